# Copyright 2026 canet_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""classes.yaml keeps any dataset or class name: written, read back, the same text."""
import pytest

from canet_ros.classes import ClassSet
from canet_ros.data.classes_file import load_classes, save_classes

NAMES = [
    "Fußgängerüberweg und Straßenbahngleise an der Haltestelle Süd Großmarkt",
    "机动车道 路面标线 白色实线 区域 人行横道",
    "a" * 29 + "ß" * 13 + "a",
    "x" * 300,
    "two\nlines",
    " leading and trailing space ",
    "hash # and - dash [brackets] {braces}",
    "'single' \"double\" \\ back",
    "line\u2028separator and next\u0085line",
    "yes",
    "123",
    "null",
    "emoji 🚗",
]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_a_name_reads_back_as_written(tmp_path, name):
    class_set = ClassSet(name, ("road", name), ((128, 64, 128), (0, 0, 142)), 255)
    path = save_classes(tmp_path, class_set)
    back = load_classes(tmp_path)
    assert (back.name, back.names) == (name, ("road", name))
    text = path.read_text(encoding="utf-8").splitlines()
    names_at = text.index("names:")
    # Still one class per line, as the file promises a hand editor.
    assert [line[:4] for line in text[names_at + 1:names_at + 3]] == ["  - ", "  - "]
    assert text[names_at + 3].startswith("colors:")

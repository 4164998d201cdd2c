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

"""train.txt / val.txt name non-ASCII frames whatever Python's filesystem encoding is.

The lists are UTF-8; Python spells the names it lists in the filesystem encoding, ASCII
with surrogate escapes under ``LC_ALL=C PYTHONUTF8=0``. A reviewer saw every non-ASCII
stem of a list reported "not a frame in images/" there, though the file was present.
The folder is read in a child process, the only way to have another filesystem encoding.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from canet_ros.classes import ClassSet
from canet_ros.data import write_dataset

CLASSES = ClassSet("two", ("road", "car"), ((128, 64, 128), (0, 0, 142)), 255)
STEMS = ["фото_é0", "frame_1", "画像_2", "é3", "frame_4"]
CHILD = """
import json, sys
from canet_ros.data import check_dataset, DatasetProblems
try:
    print(json.dumps({"encoding": sys.getfilesystemencoding(),
                      "frames": check_dataset(sys.argv[1]).frames}))
except DatasetProblems as exc:
    print(json.dumps({"encoding": sys.getfilesystemencoding(), "problems": exc.problems}))
"""


def items():
    for i, stem in enumerate(STEMS):
        mask = np.zeros((8, 12), np.uint8)
        mask[:, 6:] = 1
        yield stem, np.full((8, 12, 3), 30 * i, np.uint8), mask


def check_in_c_locale(root):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    proc = subprocess.run([sys.executable, "-c", CHILD, os.fsencode(root)], capture_output=True,
                          env=env | {"LC_ALL": "C", "PYTHONUTF8": "0"}, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


@pytest.mark.parametrize("suffix", ["", ".png"], ids=["stems", "file names"])
def test_non_ascii_list_entries_find_their_frames_under_an_ascii_filesystem_encoding(
        tmp_path, suffix):
    root = write_dataset(tmp_path / "jeu", CLASSES, items())
    (root / "train.txt").write_text("".join(f"{s}{suffix}\n" for s in STEMS[:3]), "utf-8")
    (root / "val.txt").write_text(f"{STEMS[3]}{suffix}  # non-ASCII\n", "utf-8")
    found = check_in_c_locale(root)
    assert found["encoding"] == "ascii"  # else this test tests nothing
    assert found == {"encoding": "ascii", "frames": {"train": 3, "val": 1}}


def test_a_missing_non_ascii_frame_is_still_named_as_the_list_spells_it(tmp_path):
    root = write_dataset(tmp_path / "jeu", CLASSES, items())
    (root / "train.txt").write_text("фото_é0\nпропал_é\n", "utf-8")
    found = check_in_c_locale(root)
    assert found["problems"] == [f"{root / 'train.txt'}:2: 'пропал_é' is not a frame in images/"]

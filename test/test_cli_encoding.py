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

"""Non-ASCII names on a stdout that is not UTF-8: escaped, never a traceback.

A reviewer saw ``canet dataset check`` (and info, evaluate, segment-bag, extract-frames,
export) finish the work and then exit 1 with a UnicodeEncodeError, under
``PYTHONIOENCODING=ascii`` or ``LC_ALL=C PYTHONUTF8=0``, for a class named 'Bâtiment' or a
folder named 'jeu_é'. ``canet`` now escapes what stdout cannot encode.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from canet_ros.classes import ClassSet
from canet_ros.data import write_dataset

NAMES = ("Route", "Bâtiment", "自転車")
CLASSES = ClassSet("locale", NAMES, ((128, 64, 128), (70, 70, 70), (0, 0, 142)), 255)


@pytest.fixture
def dataset(tmp_path):
    items = []
    for i in range(4):
        mask = np.full((12, 16), i % 3, np.uint8)
        mask[0, :3] = (0, 1, 2)
        items.append((f"frame_{i}", np.full((12, 16, 3), 20 * i, np.uint8), mask))
    return write_dataset(tmp_path / "jeu_é", CLASSES, items,
                         split_lists={"train": ["frame_0", "frame_1", "frame_2"],
                                      "val": ["frame_3"]})


def run(folder, **env):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("LC_", "LANG", "PYTHONIOENCODING", "PYTHONUTF8"))}
    return subprocess.run([sys.executable, "-m", "canet_ros.cli", "dataset", "check",
                           os.fsencode(folder.name)], cwd=folder.parent, capture_output=True,
                          env=base | env, timeout=300)


# Under LC_ALL=C Python gives the folder's name as surrogate escapes, which go back out as
# the name's bytes (what Python's own C-locale stdout does), for a UTF-8 terminal to show.
@pytest.mark.parametrize("env, folder", [
    ({"LANG": "C.UTF-8", "PYTHONIOENCODING": "ascii"}, "jeu_\\xe9"),
    ({"LC_ALL": "C", "PYTHONUTF8": "0"}, "jeu_é"),
    ({"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"}, "jeu_é"),
], ids=["PYTHONIOENCODING=ascii", "LC_ALL=C", "both"])
def test_names_a_stdout_cannot_encode_come_out_escaped(dataset, env, folder):
    proc = run(dataset, **env)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()
    out = proc.stdout.decode("utf-8")
    assert out.startswith(f"ok: {folder}: folder dataset, 3 classes")
    rows = [line.split() for line in out.splitlines()]
    assert [words[0] for words in rows if len(words) == 4 and words[3] == "%"][:3] == [
        "Route", "B\\xe2timent", "\\u81ea\\u8ee2\\u8eca"]


def test_main_called_by_a_program_leaves_its_streams_as_they_were(monkeypatch, tmp_path):
    import io

    from canet_ros.cli import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["dataset", "check", str(tmp_path / "none")]) == 1
    assert (out.errors, err.errors) == ("strict", "backslashreplace")
    with pytest.raises(UnicodeEncodeError):  # the program's own strict handler is back
        print("\udcff", file=out)

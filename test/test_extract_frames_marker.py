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

"""extract-frames cut short (kill -9, a full disk): its own --overwrite replaces the folder.

docs/own_data.md: "--overwrite replaces a folder an earlier extract-frames wrote". A run
cut short never writes extract.json (written last), so that cannot be the mark.
"""
from __future__ import annotations

import builtins
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, make_checkpoint

import canet_ros.image_files as image_files
from canet_ros.cli import main

CAM = "/cam/image_raw"
FRAMES = 6
FULL = Path("/dev/full")

# Runs the real command in its own process, which SIGKILLs itself when it is about to
# encode its third frame: two frames are on disk, extract.json is not.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import cv2
    from canet_ros.cli import main
    real, calls = cv2.imencode, [0]
    def encode(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    cv2.imencode = encode
    sys.exit(main(sys.argv[1:]))
""")


def command(src: Path, out: Path, ckpt: Path, *more: str) -> list:
    return ["extract-frames", str(src), "--out", str(out), "--max", str(FRAMES),
            "--min-interval", "0", "--duplicate-threshold", "0", "--no-prelabels",
            "--checkpoint", str(ckpt), "--no-progress", *more]


@pytest.fixture
def inputs(tmp_path):
    return camera_bag(tmp_path / "in", n=FRAMES, kind="rgb8", topic=CAM), make_checkpoint(tmp_path)


def assert_complete(out: Path) -> None:
    report = json.loads((out / "extract.json").read_text())
    assert len(report["frames"]) == FRAMES and not report["interrupted"]
    assert len(list((out / "images").iterdir())) == FRAMES


def test_overwrite_replaces_a_folder_a_kill_cut_short(tmp_path, inputs, capsys):
    src, ckpt = inputs
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, *command(src, out, ckpt)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(list((out / "images").iterdir())) == 2 and not (out / "extract.json").exists()
    assert main(command(src, out, ckpt)) == 1  # still asked for, as for a complete run
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(command(src, out, ckpt, "--overwrite")) == 0, capsys.readouterr().err
    assert_complete(out)


@pytest.mark.skipif(not FULL.exists(), reason="needs Linux's /dev/full")
def test_full_disk_names_the_file_and_enospc(tmp_path, inputs, monkeypatch, capsys):
    src, ckpt = inputs
    out = tmp_path / "out"
    names = []

    def opener(name, mode="r", *args, **kwargs):  # the second frame meets a full disk
        if "w" in mode and str(name).endswith(".png"):
            names.append(name)
            if len(names) == 2:
                return builtins.open(FULL, mode, *args, **kwargs)
        return builtins.open(name, mode, *args, **kwargs)

    monkeypatch.setattr(image_files, "open", opener, raising=False)
    assert main(command(src, out, ckpt)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"canet extract-frames: error: {names[1]}: ")
    assert "No space left on device" in err and "ENOSPC" in err
    assert not Path(names[1]).exists()  # no frame cut short stays
    monkeypatch.undo()  # space freed
    assert main(command(src, out, ckpt, "--overwrite")) == 0, capsys.readouterr().err
    assert_complete(out)

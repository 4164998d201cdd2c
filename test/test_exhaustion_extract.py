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

"""extract-frames whose disk fills just before extract.json (docs/own_data.md).

Before, extract.json stayed behind at 0 bytes and the error named only the folder; the
docs promise the error names the file and ENOSPC. Here the disk is a real one (a small
tmpfs, filled to the last byte by the test), so the kernel's own ENOSPC is what fails.
"""
from __future__ import annotations

import errno
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, make_checkpoint

from canet_ros.bag import extract
from canet_ros.cli import main

CAM = "/cam/image_raw"
FRAMES = 4


@pytest.fixture
def small_disk(small_tmpfs):
    """Mount a 4 MiB tmpfs, unmounted afterwards; skip where it cannot be mounted."""
    return small_tmpfs("4m")


def _fill(disk: Path) -> None:
    """Write a file on ``disk`` until the kernel says it is full."""
    block = b"\0" * 65536
    with open(disk / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:  # the last partial block
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


def test_extract_json_on_a_full_disk_is_named_and_not_left_empty(
        tmp_path, small_disk, monkeypatch, capsys):
    src = camera_bag(tmp_path / "in", n=FRAMES, kind="rgb8", topic=CAM)
    ckpt = make_checkpoint(tmp_path)
    out = small_disk / "out"
    real = extract.FrameExtractor._report

    def disk_fills_first(self, *args):
        _fill(small_disk)  # the frames are on disk; nothing more fits
        return real(self, *args)

    monkeypatch.setattr(extract.FrameExtractor, "_report", disk_fills_first)
    rc = main(["extract-frames", str(src), "--out", str(out), "--max", str(FRAMES),
               "--min-interval", "0", "--duplicate-threshold", "0", "--no-prelabels",
               "--checkpoint", str(ckpt), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.splitlines()[-1].startswith(
        f"canet extract-frames: error: {out / 'extract.json'}: cannot write (")
    assert "No space left on device (ENOSPC)" in err
    assert not (out / "extract.json").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".extract.json")]
    assert len(list((out / "images").iterdir())) == FRAMES

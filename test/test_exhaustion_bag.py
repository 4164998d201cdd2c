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

"""segment-bag on a full disk: the video and the IoU chart (docs/segment_bag.md).

The disk fills in the order the files are written: with ``--video`` the video fails first,
then the report. Before, the video's cut-short (or 0-byte) file stayed behind and the error
line named only the report; a chart that could not be drawn was silent.
"""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, run_cli, shared_engine

from canet_ros.bag import video as video_module
from canet_ros.cli import segment_bag as cli

CAM = "/cam/image_raw/compressed"
GT = "/cam/labels"
ENOSPC = os.strerror(errno.ENOSPC)


@pytest.fixture(scope="module")
def engine(one_torch_thread):
    return shared_engine()


@pytest.fixture()
def cli_engine(engine, monkeypatch):
    """Make the CLI build the shared test engine instead of loading a checkpoint per run."""
    monkeypatch.setattr(cli, "_engine_factory", lambda args: (lambda: engine))
    return engine


def _no_space(path: Path) -> OSError:
    return OSError(errno.ENOSPC, ENOSPC, str(path))


def _report_json_fails(monkeypatch, out: Path) -> None:
    """report.json is created empty, then ENOSPC, as on a full disk."""
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == "report.json" and self.parent.resolve() == out.resolve():
            self.write_bytes(b"")
            raise _no_space(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def _video_fills_the_disk(monkeypatch, after: int) -> None:
    """Give the video's encoder ENOSPC once ``after`` frames are in its file."""
    real = video_module.OverlayVideo._encode

    def encode(self, frame):
        if self.frames >= after:
            raise _no_space(self.path)
        real(self, frame)

    monkeypatch.setattr(video_module.OverlayVideo, "_encode", encode)


def test_a_full_disk_takes_the_video_with_the_report_and_names_both(
        cli_engine, tmp_path, monkeypatch, capsys):
    bag = camera_bag(tmp_path / "in", n=12, topic=CAM)
    out = tmp_path / "out"
    _video_fills_the_disk(monkeypatch, after=9)
    _report_json_fails(monkeypatch, out)
    rc, _, err = run_cli([str(bag), "--out", str(out), "--video", "--no-progress"], capsys)
    assert rc == 1
    line = next(text for text in err.splitlines()
                if text.startswith("canet segment-bag: error:"))
    assert "cannot write the report" in line
    # the video's failure too, with its file: it came first on the full disk
    assert "overlay." in line.split("cannot write the report", 1)[1]
    assert line.count(ENOSPC) == 2
    left = sorted(p.name for p in out.iterdir() if p.is_file())
    assert not [name for name in left if name.startswith(("overlay.", "report.", "iou."))]


def test_a_report_that_fails_takes_a_whole_video_too(cli_engine, tmp_path, monkeypatch,
                                                     capsys):
    bag = camera_bag(tmp_path / "in", n=10, topic=CAM)
    out = tmp_path / "out"
    _report_json_fails(monkeypatch, out)
    rc, _, err = run_cli([str(bag), "--out", str(out), "--video", "--no-progress"], capsys)
    assert rc == 1 and "cannot write the report" in err
    assert not list(out.glob("overlay.*"))


@pytest.mark.parametrize("failure", ["full-disk", "no-matplotlib"])
def test_a_chart_that_cannot_be_drawn_is_a_warning_naming_it(cli_engine, tmp_path, monkeypatch,
                                                             capsys, caplog, failure):
    from canet_ros import visualize

    def chart(per_class, path, **kwargs):
        if failure == "no-matplotlib":
            raise ModuleNotFoundError("No module named 'matplotlib'")
        Path(path).write_bytes(b"\x89PNG")  # cut short where the disk filled
        raise _no_space(path)

    monkeypatch.setattr(visualize, "save_iou_bar_chart", chart)
    bag = camera_bag(tmp_path / "in", n=3, topic=CAM, gt_topic=GT)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        rc, _, _ = run_cli([str(bag), "--out", str(out), "--gt-topic", GT, "--no-progress"],
                           capsys)
    assert rc == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    said = [text for text in warnings if str(out.resolve() / "iou.png") in text]
    assert len(said) == 1
    assert (ENOSPC if failure == "full-disk" else "matplotlib") in said[0]
    assert not (out / "iou.png").exists()
    assert (out / "report.md").is_file() and "iou.png" not in (out / "report.md").read_text()

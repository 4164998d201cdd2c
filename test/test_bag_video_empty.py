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

"""segment-bag --video with no frame segmented names no video file.

The encoder opens at the first frame, so a topic with no decodable frame leaves no file:
the report, report.md, the --json summary and the terminal used to name overlay.mp4 all
the same. Each is checked here against what is on disk.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_bag_helpers import (
    HUMBLE,
    Msg,
    compressed_image,
    receive_ns,
    run_cli,
    shared_engine,
    write_bag,
)

from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.bag.video import FALLBACK, OverlayVideo

CAM = "/cam/image_raw/compressed"


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def undecodable_bag(path: Path, n: int = 3) -> Path:
    """Write a camera topic whose every message is junk labelled JPEG (none segmented)."""
    junk = b"not a jpeg at all"
    return write_bag(path, [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i, junk))
                            for i in range(n)])


@pytest.mark.parametrize("fmt", [None, FALLBACK])
def test_a_video_given_no_frame_has_no_path(tmp_path, fmt):
    video = OverlayVideo(tmp_path, ["a", "b"], np.array([[1, 2, 3], [4, 5, 6]]), fmt)
    video.close()
    described = video.describe()
    assert described["path"] is None and described["frames"] == 0
    assert described["error"] == "no frames to encode"
    assert described["browser_playable"] is False
    assert list(tmp_path.iterdir()) == []


def test_no_segmented_frame_means_no_video_in_the_report(engine, tmp_path):
    out = tmp_path / "out"
    report = segment_bag(engine, SegmentOptions(undecodable_bag(tmp_path / "in"), out,
                                                video=True))
    assert report["frames"] == 0 and report["skipped"]["count"] == 3
    assert report["video"]["path"] is None
    assert report["video"]["error"] == "no frames to encode"
    assert not list(out.glob("overlay.*"))
    assert json.loads((out / "report.json").read_text())["video"]["path"] is None
    md = (out / "report.md").read_text()
    assert "- video: none (no frames to encode)" in md and "overlay.mp4" not in md


@pytest.mark.parametrize("as_json", [False, True])
def test_the_cli_lists_no_video_file(engine, tmp_path, capsys, monkeypatch, as_json):
    from canet_ros.cli import segment_bag as cli

    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    out = tmp_path / "out"
    args = [str(undecodable_bag(tmp_path / "in")), "--out", str(out), "--video",
            "--no-progress", *(["--json"] if as_json else [])]
    _, stdout, err = run_cli(args, capsys)
    assert "Traceback" not in err and not list(out.glob("overlay.*"))
    assert "no video was written (no frames to encode)" in err
    if as_json:
        assert json.loads(stdout)["files"]["video"] is None
    else:
        assert "overlay" not in stdout and not any(line.startswith("video")
                                                   for line in stdout.splitlines())

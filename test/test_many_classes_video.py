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

"""The segment-bag video with many classes, and a video whose encoder failed.

300 classes of 60-character names made a legend strip about 40,000 px wide, which
libx264 refused; the run still printed the video's path and report.json called it
browser-playable.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_bag_helpers import camera_bag, run_cli, shared_engine
from test_legend_text import BLUE, _text_rows

from canet_ros.bag import video
from canet_ros.draw_text import text_painter

NAMES = [f"a very long class name number {i} with spaces and \u00fcn\u00efc\u00f6d\u00e9"
         for i in range(300)]


def test_long_names_are_cut_and_keep_their_ids():
    same_start = "x" * 60
    names = [same_start + "a", same_start + "b"]
    legend = video.render_legend(names, np.array([BLUE] * 2, np.uint8), 480)
    # Narrower than one full name at the smallest text the legend draws.
    assert legend.shape[1] < text_painter(0.3).width(names[0])
    first, second = _text_rows(legend)
    assert not np.array_equal(first, second)  # the ids tell the cut names apart


def test_300_long_names_make_a_video_of_sane_width(tmp_path):
    av = pytest.importorskip("av", reason="PyAV is the video extra (pip install av)")
    colors = np.random.default_rng(0).integers(0, 256, (300, 3)).astype(np.uint8)
    clip = video.OverlayVideo(tmp_path, NAMES, colors)
    rng = np.random.default_rng(1)
    for i in range(video.OverlayVideo.PROBE_FRAMES):
        clip.write(rng.integers(0, 256, (48, 64, 3), np.uint8), "rgb", i * 100_000_000)
    clip.close()
    info = clip.describe()
    assert info["error"] is None and info["frames"] == video.OverlayVideo.PROBE_FRAMES
    with av.open(info["path"]) as container:
        stream = container.streams.video[0]
        # The picture plus a legend of at most twice its width, or 640 px for a small one.
        assert stream.height == 48 and 64 < stream.width <= 64 + 640
        assert sum(1 for _ in container.decode(video=0)) == video.OverlayVideo.PROBE_FRAMES


@pytest.fixture
def failing_encoder(monkeypatch, tmp_path):
    """segment-bag --video whose encoder refuses to open, as libx264 did."""
    from canet_ros.cli import segment_bag as cli

    def refuse(self, width, height):
        raise RuntimeError("avcodec_open2 failed")

    engine = shared_engine()
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    monkeypatch.setattr(video.OverlayVideo, "_start", refuse)
    return camera_bag(tmp_path / "rec", n=2)


def test_failed_video_is_warned_about_and_not_listed(failing_encoder, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = run_cli([str(failing_encoder), "--out", str(out), "--video",
                               "--no-progress"], capsys)
    assert rc == 0, err  # the bag and the scores are fine
    assert "overlay" not in stdout and not any(line.startswith("video")
                                               for line in stdout.splitlines())
    warning = [line for line in err.splitlines() if "warning" in line and "video" in line]
    assert len(warning) == 1 and "avcodec_open2 failed" in warning[0], err
    report = json.loads((out / "report.json").read_text())
    assert report["video"]["error"] and report["video"]["browser_playable"] is False
    assert report["video"]["path"] is None and not list(out.glob("overlay.*"))


def test_failed_video_is_no_file_in_the_json_summary(failing_encoder, tmp_path, capsys):
    rc, stdout, err = run_cli([str(failing_encoder), "--out", str(tmp_path / "out"),
                               "--video", "--json", "--no-progress"], capsys)
    assert rc == 0, err
    assert json.loads(stdout)["files"]["video"] is None
    assert "avcodec_open2 failed" in err

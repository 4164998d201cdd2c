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

"""Outputs that describe themselves.

The palette in report.json, a colour legend in report.md, a video whose legend hides
none of the picture, and the wording of damage lines.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import camera_bag, read_bag, shared_engine

from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.bag.report_md import damage_lines, render_markdown

CAM = "/cam/image_raw/compressed"


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def test_report_carries_the_palette_and_report_md_a_legend(engine, tmp_path):
    report = segment_bag(engine, SegmentOptions(camera_bag(tmp_path / "rec", n=1, topic=CAM),
                                                tmp_path / "out"))
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    # CamVid's colours as SegNet published them: Sky grey, Pavement (60, 40, 222), ...
    assert saved["palette"][0] == [128, 128, 128] and saved["palette"][4] == [60, 40, 222]
    assert len(saved["palette"]) == len(saved["class_names"]) == 11
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Colours" in md and "![colour legend](legend.png)" in md
    assert "| Sky | 128, 128, 128 | #808080 |" in md
    assert "| Pavement | 60, 40, 222 | #3c28de |" in md
    legend = cv2.imread(str(tmp_path / "out" / "legend.png"))  # BGR
    for rgb in saved["palette"]:
        assert (legend == rgb[::-1]).all(axis=2).sum() > 50, rgb  # a swatch of each colour
    assert report["legend"] == "legend.png"


def test_video_legend_sits_beside_the_picture(engine, tmp_path):
    pytest.importorskip("av", reason="PyAV is the video extra (pip install av)")
    src = camera_bag(tmp_path / "rec", n=2, topic=CAM)
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", video=True))
    overlay = read_bag(Path(report["output_bag"]))["/cam/segmentation/overlay"][0][1]
    picture = np.frombuffer(overlay.data, np.uint8).reshape(overlay.height, overlay.width, 3)
    ok, frame = cv2.VideoCapture(report["video"]["path"]).read()
    assert ok and frame.shape[0] == overlay.height and frame.shape[1] > overlay.width
    if overlay.encoding == "rgb8":
        picture = picture[:, :, ::-1]
    # The whole picture, its top-left corner included, is there (up to H.264's loss).
    diff = np.abs(frame[:, :overlay.width].astype(int) - picture.astype(int))
    assert diff.mean() < 6 and diff[:20, :30].mean() < 12


def test_damage_wording():
    damage = {"method": "a scan of the file's chunks", "cause": "File end magic is invalid.",
              "regions": [{"messages": None, "reason": "cut off"}], "notes": []}
    lines = damage_lines(damage)
    assert lines[0] == "Read by a scan of the file's chunks, because: File end magic is invalid."
    assert lines[1].startswith("- an unknown number of messages lost")
    md = render_markdown({"input": "x", "topic": "/t", "frames": 96, "frames_lost": None,
                          "skipped": {"count": 0}, "damage": damage})
    assert "- frames: 96 written, 0 skipped, an unknown number lost in the damaged bag" in md

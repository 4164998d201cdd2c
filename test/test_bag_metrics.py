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

"""Ground truth from a topic or a folder, matched by stamp or index.

The report's numbers are recomputed here with a hand-written IoU, over predictions made
here from frames decoded here (the test model's labels vary across the frame, so a frame
scored against another frame's ground truth changes the numbers).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import (
    camera_bag,
    hand_iou,
    image_array,
    labels_for,
    read_bag,
    shared_engine,
    stamp,
)

from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.classes import CAMVID

CAM = "/cam/image_raw/compressed"
GT = "/cam/ground_truth"
LABELS = "/cam/segmentation/labels"


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def expected_labels(engine, source: Path, i: int) -> np.ndarray:
    """Return the engine's labels for frame i of the input bag, decoded here with OpenCV."""
    _, msg = read_bag(source)[CAM][i]
    bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
    return engine.infer(bgr, "bgr").labels


def check_scores(engine, source: Path, report: dict, gt_frames: list[int]) -> None:
    out = read_bag(Path(report["output_bag"]))
    preds = [expected_labels(engine, source, i) for i in gt_frames]
    for i, pred in zip(gt_frames, preds, strict=True):
        assert np.array_equal(image_array(out[LABELS][i][1]), pred)
    ious, miou, acc = hand_iou(preds, [labels_for(i) for i in gt_frames], 11, 11)
    assert report["miou"] == pytest.approx(miou, abs=1e-9)
    assert report["global_acc"] == pytest.approx(acc, abs=1e-9)
    assert report["per_class"] == pytest.approx({CAMVID.names[c]: v for c, v in ious.items()})
    assert all(0.0 <= v <= 1.0 for v in report["per_class"].values())
    assert report["ground_truth"]["frames_with_gt"] == len(gt_frames)
    assert np.asarray(report["confusion_matrix"]).sum() == report["pixels"]


@pytest.mark.parametrize("fmt", ["mcap", "ros1"])
def test_gt_topic_with_missing_frames(engine, tmp_path, fmt):
    src = camera_bag(tmp_path / ("in.bag" if fmt == "ros1" else "in"), n=5, fmt=fmt, topic=CAM,
                     gt_topic=GT, gt_skip=(1, 3))
    # No --topic: the ground-truth topic is not a candidate, so the camera is the only one.
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", gt_topic=GT))
    assert report["topic"] == CAM and report["frames"] == 5
    check_scores(engine, src, report, [0, 2, 4])
    assert report["ground_truth"]["frames_without_gt"] == 2
    assert [f["position"] for f in report["ground_truth"]["frames_not_scored"]] == [1, 3]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk == report
    assert (tmp_path / "out" / "report.md").read_text().count("|") > 20
    assert (tmp_path / "out" / report["chart"]).is_file()


def test_gt_dir_by_stamp_and_index(engine, tmp_path):
    src = camera_bag(tmp_path / "in", n=5, topic=CAM)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    sec, nsec = stamp(0)
    cv2.imwrite(str(gt_dir / f"{sec}_{nsec:09d}.png"), labels_for(0))
    sec, nsec = stamp(1)
    cv2.imwrite(str(gt_dir / f"{sec * 1_000_000_000 + nsec}.png"), labels_for(1))
    cv2.imwrite(str(gt_dir / "000003.png"), labels_for(3))
    (gt_dir / "notes.png").write_bytes(b"")  # an unrecognised name is reported, not fatal
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", gt_dir=gt_dir))
    check_scores(engine, src, report, [0, 1, 3])
    gt = report["ground_truth"]
    assert gt["frames_without_gt"] == 2 and gt["available"] == 3 and gt["unused"] == 0
    assert sum(gt["unusable"].values()) == 1
    # Frames 2 and 4 have no file: paired with a neighbour's, 000003.png would go to frame 2.
    missing = gt["frames_not_scored"]
    assert [f["position"] for f in missing] == [2, 4]
    assert [f["stamp_ns"] for f in missing] == [s * 10**9 + n for s, n in (stamp(2), stamp(4))]


def test_gt_of_another_size_is_counted_not_scored(engine, tmp_path):
    src = camera_bag(tmp_path / "in", n=2, topic=CAM)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    cv2.imwrite(str(gt_dir / "000000.png"), np.zeros((10, 10), np.uint8))
    cv2.imwrite(str(gt_dir / "000001.png"), labels_for(1))
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", gt_dir=gt_dir))
    check_scores(engine, src, report, [1])
    assert sum(report["ground_truth"]["frames_gt_unusable"].values()) == 1


def test_timing_fields_are_consistent(engine, tmp_path):
    src = camera_bag(tmp_path / "in", n=4, topic=CAM)
    r = segment_bag(engine, SegmentOptions(src, tmp_path / "out"))
    assert r["model_fps"] == pytest.approx(r["frames"] / r["infer_s"], rel=1e-4)
    assert r["fps"] == pytest.approx(r["frames"] / r["wall_s"], rel=1e-4)
    assert r["fps_ratio"] == pytest.approx(r["fps"] / r["model_fps"])
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
    assert r["model"]["backbone"] == "mobilenetv2" and r["model"]["num_classes"] == 11
    assert r["checkpoint"].endswith("tiny.pt") and r["device"]
    assert r["skipped"]["count"] == 0 and "miou" not in r and r["chart"] is None

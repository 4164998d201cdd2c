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

"""Ground truth with ids the model has no class for is unusable, not half-scored.

The confusion matrix leaves out pixels whose ground truth is no class; a mask whose left
half is id 200 would have its right half scored as if it were the whole frame (a reviewer
saw mIoU 100 % with half the pixels unscored). ``canet dataset check`` refuses such a mask;
segment-bag now counts its frame as having unusable ground truth, in the same words.
The expected scores are recomputed here with a hand-written IoU over the good frames only.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import (
    HUMBLE,
    Msg,
    compressed_image,
    hand_iou,
    header,
    labels_for,
    receive_ns,
    run_cli,
    shared_engine,
    stamp,
    write_bag,
)

from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.classes import CAMVID
from canet_ros.data.folder import DatasetError, check_ids

CAM = "/cam/image_raw/compressed"
GT = "/cam/ground_truth"


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def bad_labels(i: int) -> dict[int, np.ndarray]:
    """Frame 1: left half id 200; frame 2: one pixel of id 12 (the first past void 11)."""
    one = labels_for(1)
    one[:, : one.shape[1] // 2] = 200
    two = labels_for(2)
    two[3, 4] = 12
    return {1: one, 2: two}.get(i, labels_for(i))


def checker_words(labels: np.ndarray) -> str:
    """Return what ``canet dataset check`` says of this mask, less its file name."""
    with pytest.raises(DatasetError) as caught:
        check_ids(labels, CAMVID, Path("m.png"))
    return str(caught.value).removeprefix("m.png: ")


def label_message(i: int):
    labels = bad_labels(i)
    h, w = labels.shape
    return HUMBLE.types["sensor_msgs/msg/Image"](
        header=header(HUMBLE, i), height=h, width=w, encoding="mono8", is_bigendian=0, step=w,
        data=labels.reshape(-1))


def expected_scores(engine, frames: list[int]) -> tuple[dict, float, float]:
    preds = []
    for i in frames:
        data = compressed_image(HUMBLE, i).data
        preds.append(engine.infer(cv2.imdecode(np.asarray(data), cv2.IMREAD_COLOR),
                                  "bgr").labels)
    return hand_iou(preds, [labels_for(i) for i in frames], 11, 11)


def check_report(engine, report: dict) -> None:
    gt = report["ground_truth"]
    reasons = {checker_words(bad_labels(1)): 1, checker_words(bad_labels(2)): 1}
    assert set(reasons) == {"ids [200] outside the 11 classes (0-10, ignore 11)",
                            "ids [12] outside the 11 classes (0-10, ignore 11)"}
    assert gt["frames_gt_unusable"] == reasons
    assert gt["frames_with_gt"] == 2 and gt["frames_without_gt"] == 0
    assert [(f["position"], f["reason"]) for f in gt["frames_not_scored"]] == [
        (1, checker_words(bad_labels(1))), (2, checker_words(bad_labels(2)))]
    ious, miou, acc = expected_scores(engine, [0, 3])
    assert report["miou"] == pytest.approx(miou, abs=1e-9)
    assert report["global_acc"] == pytest.approx(acc, abs=1e-9)
    assert report["per_class"] == pytest.approx({CAMVID.names[c]: v for c, v in ious.items()})
    md = (Path(report["output_bag"]).parent / "report.md").read_text()
    assert "2 frames scored, 0 without ground truth, 2 with unusable ground truth" in md
    assert "ids [200] outside the 11 classes" in md


def test_gt_dir_with_ids_past_the_classes_is_unusable(engine, tmp_path):
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(4)]
    src = write_bag(tmp_path / "in", msgs)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for i in range(4):
        sec, nsec = stamp(i)
        cv2.imwrite(str(gt_dir / f"{sec}_{nsec:09d}.png"), bad_labels(i))
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", gt_dir=gt_dir))
    check_report(engine, report)
    assert report["ground_truth"]["unused"] == 0  # paired, then found unusable


def test_gt_topic_with_ids_past_the_classes_is_unusable(engine, tmp_path):
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(4)]
    msgs += [Msg(GT, receive_ns(i, 7), label_message(i)) for i in range(4)]
    src = write_bag(tmp_path / "in", msgs)
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", topic=CAM, gt_topic=GT))
    check_report(engine, report)


def test_only_bad_ground_truth_scores_nothing(engine, tmp_path):
    """The reviewer's bag: every mask is id 200, so no frame is scored (it read 100 %)."""
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(2)]
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for i in range(2):
        cv2.imwrite(str(gt_dir / f"{i:06d}.png"), np.full(labels_for(i).shape, 200, np.uint8))
    report = segment_bag(engine, SegmentOptions(write_bag(tmp_path / "in", msgs),
                                                tmp_path / "out", gt_dir=gt_dir))
    assert report["ground_truth"]["frames_with_gt"] == 0
    assert report["ground_truth"]["frames_gt_unusable"] == {
        "ids [200] outside the 11 classes (0-10, ignore 11)": 2}
    assert report["pixels"] == 0 and report["miou"] is None


def test_the_terminal_says_why_frames_were_not_scored(engine, tmp_path, capsys, monkeypatch):
    from canet_ros.cli import segment_bag as cli

    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(2)]
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    cv2.imwrite(str(gt_dir / "000000.png"), np.full(labels_for(0).shape, 200, np.uint8))
    cv2.imwrite(str(gt_dir / "000001.png"), labels_for(1))
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    rc, out, err = run_cli([str(write_bag(tmp_path / "in", msgs)), "--out", str(tmp_path / "o"),
                            "--gt-dir", str(gt_dir), "--no-progress"], capsys)
    assert rc == 0 and "Traceback" not in err
    assert ("ground truth unusable on 1 frame, not scored: 1 x "
            + checker_words(np.full((2, 2), 200, np.uint8))) in out.splitlines()

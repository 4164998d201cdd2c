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

"""The bundled CamVid sample bag and ``canet segment-bag sample``."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import hand_iou, image_array, make_checkpoint, read_bag, run_cli

from canet_ros.bag import SAMPLE_BAG, SAMPLE_GT_TOPIC, SAMPLE_IMAGE_TOPIC
from canet_ros.checkpoint import DEFAULT_CHECKPOINT
from canet_ros.image_codec import compressed_to_array


def test_sample_bag_contents():
    assert (SAMPLE_BAG / "metadata.yaml").is_file()
    size = sum(p.stat().st_size for p in SAMPLE_BAG.iterdir())
    assert size < 3_000_000
    bag = read_bag(SAMPLE_BAG)
    assert set(bag) == {SAMPLE_IMAGE_TOPIC, SAMPLE_GT_TOPIC}
    images, labels = bag[SAMPLE_IMAGE_TOPIC], bag[SAMPLE_GT_TOPIC]
    assert len(images) == len(labels) == 8
    for (_, img), (_, lab) in zip(images, labels, strict=True):
        assert img.header.stamp == lab.header.stamp
        assert compressed_to_array(img).shape == (360, 480, 3)
        assert (lab.encoding, lab.width, lab.height) == ("mono8", 480, 360)
        assert int(lab.data.max()) <= 11


def expected_scores(checkpoint: Path, resolution: str) -> tuple[float, dict, list]:
    """Work out the sample's mIoU here.

    Frames decoded with OpenCV, an engine built as the command builds it, ground truth
    taken from the bag by header stamp, a plain IoU.
    """
    from canet_ros.inference import SegmentationEngine

    engine = SegmentationEngine(checkpoint, device="cpu", resolution=resolution,
                                output_size="input")
    bag = read_bag(SAMPLE_BAG)
    truth = {(m.header.stamp.sec, m.header.stamp.nanosec): m for _, m in bag[SAMPLE_GT_TOPIC]}
    preds, gts = [], []
    for _, msg in bag[SAMPLE_IMAGE_TOPIC]:
        bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
        preds.append(engine.infer(bgr, "bgr").labels)
        gts.append(image_array(truth[(msg.header.stamp.sec, msg.header.stamp.nanosec)]))
    ious, miou, _ = hand_iou(preds, gts, 11, 11)
    return miou, ious, preds


def test_sample_shortcut_selects_ground_truth(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "out"
    # fp32, as the reference engine below runs (the CPU default, auto, may pick int8).
    rc, stdout, err = run_cli(["sample", "--out", str(out), "--checkpoint", str(ckpt),
                               "--resolution", "96x72", "--video", "--json",
                               "--precision", "fp32"], capsys)
    assert rc == 0, err
    short = json.loads(stdout)
    report = json.loads((out / "report.json").read_text())
    # stdout carries the figures; the matrix and the per-frame lists only report.json
    assert len(stdout.splitlines()) < 80 and "confusion_matrix" not in short
    assert np.asarray(report["confusion_matrix"]).shape == (11, 11)
    assert short["frames"] == report["frames"] == 8
    assert short["miou"] == report["miou"] and short["files"]["report_json"] == str(
        (out / "report.json").resolve())
    # Every file docs/segment_bag.md lists is named, the legend too, and exists.
    assert short["files"]["legend"] == str((out / "legend.png").resolve())
    assert all(Path(path).exists() for path in short["files"].values()), short["files"]
    assert set(short["files"]) == {"output_bag", "report_json", "report_md", "legend",
                                   "iou_chart", "video"}
    assert report["topic"] == SAMPLE_IMAGE_TOPIC and report["model"]["resolution"] == "96x72"
    assert report["ground_truth"]["source"] == f"topic {SAMPLE_GT_TOPIC}"
    assert report["ground_truth"]["frames_with_gt"] == 8
    miou, ious, preds = expected_scores(ckpt, "96x72")
    assert report["miou"] == pytest.approx(miou, abs=1e-9)
    assert len(report["per_class"]) == len(ious) >= 3
    labels = read_bag(Path(report["output_bag"]))["/camera/segmentation/labels"]
    for (_, msg), pred in zip(labels, preds, strict=True):
        assert np.array_equal(image_array(msg), pred)
    video = cv2.VideoCapture(report["video"]["path"])
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert (out / "iou.png").is_file()
    overlay = read_bag(Path(report["output_bag"]))["/camera/segmentation/overlay"]
    assert len(overlay) == 8 and overlay[0][1].encoding == "bgr8"  # JPEG input decodes BGR
    md = (out / "report.md").read_text()
    assert "includes queueing" in md and f"]({Path(report['video']['path']).name})" in md


@pytest.mark.parametrize("change", [
    {"names": ("road", "sidewalk", "car", "person", "background")},  # a fine-tuned camera
    {"names": ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
               "Car", "Pedestrian", "Bicyclist", "Animal"), "ignore_index": 255},  # one more
])
def test_the_sample_does_not_score_a_model_of_other_classes(tmp_path, capsys, change):
    # The sample's label images hold CamVid ids; another model's id 0 is not Sky.
    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID, ClassSet
    from canet_ros.models import build_canet

    names = change["names"]
    colours = tuple((9 * i, 50, 200 - 9 * i) for i in range(len(names)))
    classes = ClassSet("mine", names, colours, change.get("ignore_index", CAMVID.ignore_index))
    ckpt = save_checkpoint(tmp_path / "mine.pt", build_canet("mobilenetv2", len(names)),
                           build_metadata("mobilenetv2", classes, input_size=(96, 72)))
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["sample", "--out", str(out), "--checkpoint", str(ckpt),
                               "--precision", "fp32", "--json"], capsys)
    assert rc == 0, err
    report = json.loads((out / "report.json").read_text())
    assert "miou" not in report and report["ground_truth"] is None
    assert report["ground_truth_note"].startswith("the sample's ground truth was not scored")
    assert json.loads(stdout)["ground_truth_note"] == report["ground_truth_note"]
    assert f"warning: {report['ground_truth_note']}" in err
    assert "was not scored" in (out / "report.md").read_text()


def test_text_summary_names_what_was_written(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["sample", "--out", str(out), "--checkpoint", str(ckpt),
                               "--resolution", "96x72", "--video", "--no-progress"], capsys)
    assert rc == 0, err
    named = dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)
    # Not the bundled model: the note says which frames, without the bundled model's figures.
    # Its training is not recorded: the note says what follows if it was CamVid train.
    assert "  scored on 8 CamVid val frames of drive 0016E5; if this checkpoint trained on " \
           "CamVid train it has seen this drive" in stdout and "40-55" not in stdout
    for label, name in (("output bag", "camvid_sample_segmented"), ("report", "report.md"),
                        ("report (JSON)", "report.json"), ("IoU chart", "iou.png"),
                        ("video", "overlay.")):
        assert Path(named[label]).name.startswith(name) and Path(named[label]).exists()


@pytest.mark.parametrize("argv,needle,not_needle", [
    (["--gt-dir", "/nonexistent/gt"], "/nonexistent/gt: ground-truth folder does not exist",
     "image topics"),
    (["--topic", SAMPLE_GT_TOPIC], f"--topic {SAMPLE_GT_TOPIC} is the ground-truth topic",
     "--gt-topic is the topic being segmented"),
])
def test_sample_argument_errors_come_first_and_name_what_was_typed(tmp_path, capsys, argv,
                                                                   needle, not_needle):
    rc, out, err = run_cli(["sample", "--out", str(tmp_path / "o"), *argv], capsys)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert needle in err and not_needle not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="bundled model not trained yet")
def test_sample_with_the_bundled_model(tmp_path, capsys):
    rc, stdout, err = run_cli(["sample", "--out", str(tmp_path / "o"), "--json",
                               "--no-progress"], capsys)
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["frames"] == 8 and report["miou"] > 0.3
    # The headline says which frames these are and what a new camera gets: the model
    # card's held-out figures, not this score.
    card = (DEFAULT_CHECKPOINT.parent / "MODEL_CARD.md").read_text()
    assert "Expect 40-55 mIoU on a drive the model has never seen" in card and "41.2" in card
    note = report["accuracy_note"]
    assert "CamVid val" in note and "0016E5" in note and "trained on" in note
    assert "40-55 mIoU" in note and "41.2" in note and "MODEL_CARD.md" in note
    assert f"Note: {note}." in (tmp_path / "o" / "report.md").read_text()


def test_accuracy_note_follows_what_was_scored():
    from canet_ros.bag.sample import accuracy_note

    whole = accuracy_note(SAMPLE_BAG, str(DEFAULT_CHECKPOINT), SAMPLE_GT_TOPIC, 8)
    assert whole.startswith("scored on 8 CamVid val frames of drive 0016E5, which")
    # A run stopped after 3 frames scored 3, not the 8 the whole sample holds.
    part = accuracy_note(SAMPLE_BAG, str(DEFAULT_CHECKPOINT), SAMPLE_GT_TOPIC, 3)
    assert part.startswith("scored on 3 of the 8 CamVid val frames of drive 0016E5, which")
    # The sample's frames scored against the user's own labels (--gt-dir): not its note.
    assert accuracy_note(SAMPLE_BAG, str(DEFAULT_CHECKPOINT), None, 8) is None


def test_sample_scored_against_other_labels_has_no_sample_note(tmp_path, capsys):
    gt = tmp_path / "gt"
    gt.mkdir()
    for i in range(8):  # everything Sky (CamVid id 0): the user's labels, not the sample's
        cv2.imwrite(str(gt / f"{i:06d}.png"), np.zeros((360, 480), np.uint8))
    rc, stdout, _ = run_cli(["sample", "--topic", SAMPLE_IMAGE_TOPIC, "--gt-dir", str(gt),
                             "--out", str(tmp_path / "o"), "--resolution", "96x72",
                             "--json"], capsys)
    report = json.loads(stdout)
    assert rc == 0 and report["ground_truth"]["frames_with_gt"] == 8
    assert report["accuracy_note"] is None


def test_the_files_named_are_absolute_with_a_relative_out(tmp_path, monkeypatch):
    from canet_ros.bag.report_md import written_files
    monkeypatch.chdir(tmp_path)
    report = {"output_bag": str(tmp_path / "out" / "x_segmented"), "legend": "legend.png",
              "chart": "iou.png", "video": {"path": str(tmp_path / "out" / "overlay.mp4")}}
    files = written_files(report, Path("out"))
    assert files["legend"] == str(tmp_path / "out" / "legend.png")
    assert files["iou_chart"] == str(tmp_path / "out" / "iou.png")
    assert all(Path(p).is_absolute() for p in files.values()), files


def test_a_run_with_no_ground_truth_has_a_null_accuracy_note(tmp_path, capsys):
    import shutil
    bag = tmp_path / "drive2"  # not the sample: no ground truth unless one is named
    shutil.copytree(SAMPLE_BAG, bag)
    rc, stdout, err = run_cli([str(bag), "--topic", SAMPLE_IMAGE_TOPIC, "--out",
                               str(tmp_path / "o"), "--resolution", "96x72", "--json"], capsys)
    assert rc == 0, err
    report = json.loads(stdout)
    assert "miou" not in report and report["frames"] == 8
    # docs/segment_bag.md: "null otherwise", so report["accuracy_note"] is safe to read
    assert "accuracy_note" in report and report["accuracy_note"] is None
    saved = json.loads((tmp_path / "o" / "report.json").read_text())
    assert saved["accuracy_note"] is None

"""The bundled CamVid sample bag and ``canet segment-bag sample``."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from test_bag_helpers import make_checkpoint, read_bag, run_cli

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


def test_sample_shortcut_selects_ground_truth(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["sample", "--out", str(out), "--checkpoint", str(ckpt),
                               "--resolution", "96x72", "--video", "--json"], capsys)
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["frames"] == 8 and report["topic"] == SAMPLE_IMAGE_TOPIC
    assert report["ground_truth"]["source"] == f"topic {SAMPLE_GT_TOPIC}"
    assert report["ground_truth"]["frames_with_gt"] == 8
    assert 0.0 <= report["miou"] <= 1.0 and report["model"]["resolution"] == "96x72"
    for key in ("fps", "model_fps", "fps_ratio", "latency_ms", "skipped", "interrupted"):
        assert key in report
    video = cv2.VideoCapture(report["video"])
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert (out / "iou.png").is_file()
    overlay = read_bag(Path(report["output_bag"]))["/camera/segmentation/overlay"]
    assert len(overlay) == 8 and overlay[0][1].encoding == "bgr8"  # JPEG input decodes BGR


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="bundled model not trained yet")
def test_sample_with_the_bundled_model(tmp_path, capsys):
    rc, stdout, err = run_cli(["sample", "--out", str(tmp_path / "o"), "--json"], capsys)
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["frames"] == 8 and report["miou"] > 0.3

"""Evaluation: our metric vs the official Cityscapes evaluator, and the `canet evaluate` CLI."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from canet_ros.checkpoint import DEFAULT_CHECKPOINT, build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli import evaluate as evaluate_cli
from canet_ros.data import label_to_train_lut, train_to_label_ids
from canet_ros.evaluation import evaluate_checkpoint, format_table, parse_resolution
from canet_ros.metrics import ConfusionMatrix
from canet_ros.models import build_canet


def camvid_root() -> Path:
    env = os.environ.get("CANET_CAMVID_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def _official_evaluator():
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    ev.args.evalInstLevelScore = False  # needs *_instanceIds.png files we do not fake
    ev.args.evalPixelAccuracy = False
    ev.args.JSONOutput = False
    ev.args.quiet = True
    return ev


def test_miou_matches_official_cityscapes_evaluator(tmp_path):
    ev = _official_evaluator()
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    rng = np.random.default_rng(0)
    all_ids = np.array([lab.id for lab in labels.labels if lab.id >= 0])
    eval_ids = train_to_label_ids()[:19]
    lut = label_to_train_lut()
    ours = ConfusionMatrix(19, 255)
    preds, gts = [], []
    for i in range(5):
        gt = rng.choice(all_ids, size=(40, 60)).astype(np.uint8)
        pred = np.where(rng.random((40, 60)) < 0.4, gt, rng.choice(eval_ids, size=(40, 60)))
        pred[:3, :] = 0  # an ignored labelId predicted: a miss, never a false positive
        if i == 4:
            gt[gt == 28] = 0  # "bus" absent from one frame only: still in the mean
        pred = pred.astype(np.uint8)
        gts.append(str(tmp_path / f"f{i}_gtFine_labelIds.png"))
        preds.append(str(tmp_path / f"f{i}_pred.png"))
        cv2.imwrite(gts[-1], gt)
        cv2.imwrite(preds[-1], pred)
        ours.update(lut[pred], lut[gt])
    result = ev.evaluateImgLists(preds, gts, ev.args)
    summary = ours.summary([labels.trainId2label[t].name for t in range(19)])
    official = result["classScores"]
    for name, iou in summary["per_class"].items():
        assert iou == pytest.approx(official[name], abs=1e-6), name
    assert summary["miou"] == pytest.approx(result["averageScoreClasses"], abs=1e-6)


def test_absent_class_left_out_of_mean_like_official(tmp_path):
    ev = _official_evaluator()
    gt = np.full((10, 10), 7, np.uint8)  # road only
    pred = gt.copy()
    pred[:, :5] = 8  # half predicted as sidewalk
    cv2.imwrite(str(tmp_path / "g_gtFine_labelIds.png"), gt)
    cv2.imwrite(str(tmp_path / "p.png"), pred)
    result = ev.evaluateImgLists([str(tmp_path / "p.png")],
                                 [str(tmp_path / "g_gtFine_labelIds.png")], ev.args)
    lut = label_to_train_lut()
    cm = ConfusionMatrix(19, 255)
    cm.update(lut[pred], lut[gt])
    # road 0.5, sidewalk 0 (false positives only), the other 17 classes absent.
    assert cm.miou() == pytest.approx(0.25)
    assert cm.miou() == pytest.approx(result["averageScoreClasses"], abs=1e-6)


def _camvid_tree(root: Path, frames: int = 3) -> Path:
    rng = np.random.default_rng(1)
    for split in ("val",):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir(parents=True)
        for i in range(frames):
            label = rng.integers(0, 12, (36, 48)).astype(np.uint8)
            cv2.imwrite(str(root / split / f"0016E5_{i:05d}.png"),
                        rng.integers(0, 255, (36, 48, 3)).astype(np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"0016E5_{i:05d}.png"), label)
    return root


def _tiny_checkpoint(path: Path, input_size=(32, 24)) -> Path:
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes)
    meta = build_metadata("mobilenetv2", CAMVID, mean=[0.5] * 3, std=[0.25] * 3,
                          input_size=input_size)
    return save_checkpoint(path, model.eval(), meta, half=True)


def test_evaluate_checkpoint_scores_at_label_size_and_saves_vis(tmp_path):
    root = _camvid_tree(tmp_path / "camvid")
    ckpt = _tiny_checkpoint(tmp_path / "m.pt")
    res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", save_vis=str(tmp_path / "v"),
                              vis_count=2)
    labels = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
              for p in sorted((root / "valannot").iterdir())]
    # Network ran at 32x24 but every non-void pixel of the 48x36 labels was scored.
    assert res["pixels"] == sum(int((lab != 11).sum()) for lab in labels)
    assert res["frames"] == 3 and res["resolution"] == [32, 24]
    assert 0.0 <= res["miou"] <= 1.0 and 0.0 <= res["global_acc"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in res["per_class"].values())
    cm = np.array(res["confusion_matrix"])
    assert res["global_acc"] == pytest.approx(np.trace(cm) / cm.sum())
    pngs = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert pngs == ["000_0016E5_00000.png", "001_0016E5_00001.png", "confusion_matrix.png",
                    "per_class_iou.png"]
    side = cv2.imread(str(tmp_path / "v" / pngs[0]))
    assert side.shape == (36, 3 * 48 + 8, 3)


def _cli_args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate_cli.add_parser(parser.add_subparsers())
    argv = ["evaluate"]
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        argv += [flag] if v is True else [flag, str(v)]
    return parser.parse_args(argv)


def test_cli_json_and_table(tmp_path, capsys):
    root = _camvid_tree(tmp_path / "camvid", frames=2)
    ckpt = _tiny_checkpoint(tmp_path / "m.pt")
    assert evaluate_cli.run(_cli_args(checkpoint=ckpt, data_root=root, split="val",
                                      resolution="48x36", device="cpu", json=True)) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"miou", "global_acc", "per_class", "frames"} <= set(out)
    assert out["frames"] == 2 and out["resolution"] == [48, 36]
    assert evaluate_cli.run(_cli_args(checkpoint=ckpt, data_root=root, device="cpu")) == 0
    table = capsys.readouterr().out
    assert "mIoU" in table and "Bicyclist" in table
    assert evaluate_cli.run(_cli_args(checkpoint=tmp_path / "nope.pt", data_root=root)) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_parse_resolution_and_table():
    assert parse_resolution("480x360") == (480, 360) and parse_resolution(None) is None
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_resolution("480")
    text = format_table({"miou": 0.5, "global_acc": 0.75, "per_class": {"Sky": 0.5},
                         "frames": 1}, ["Sky", "Road"])
    assert "50.00" in text and "75.00" in text and "n/a" in text


def test_default_checkpoint_on_real_camvid(capsys):
    root = camvid_root()
    if not (root / "val").is_dir():
        pytest.skip(f"CamVid not found at {root} (set CANET_CAMVID_ROOT)")
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"{DEFAULT_CHECKPOINT} not shipped yet")
    args = _cli_args(checkpoint="default", data_root=root, split="val", device="cpu", json=True)
    args.include = ["0016E5_0795"]  # a handful of frames keeps this fast
    assert evaluate_cli.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] > 0 and out["miou"] > 0.2 and out["global_acc"] > 0.5

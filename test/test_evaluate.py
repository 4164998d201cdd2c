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
import torch.nn.functional as F

from canet_ros.checkpoint import DEFAULT_CHECKPOINT, build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli import EXIT_ERROR
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
    """Random labels; frames made of 2x2 blocks, so halving them is exact in any resizer."""
    rng = np.random.default_rng(1)
    for split in ("val",):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir(parents=True)
        for i in range(frames):
            label = rng.integers(0, 12, (36, 48)).astype(np.uint8)
            blocks = rng.integers(0, 255, (18, 24, 3)).astype(np.uint8)
            frame = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
            cv2.imwrite(str(root / split / f"0016E5_{i:05d}.png"), frame)
            cv2.imwrite(str(root / f"{split}annot" / f"0016E5_{i:05d}.png"), label)
    return root


def seeded_model() -> torch.nn.Module:
    """Untrained, with a scaled-up classifier so its labels vary across the frame."""
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    return model


def _tiny_checkpoint(path: Path, input_size=(24, 18), model=None, half=True) -> Path:
    model = seeded_model() if model is None else model
    meta = build_metadata("mobilenetv2", CAMVID, mean=[0.5] * 3, std=[0.25] * 3,
                          input_size=input_size)
    return save_checkpoint(path, model.eval(), meta, half=half)


def hand_confusion(preds, labels, num_classes: int) -> np.ndarray:
    """Count a confusion matrix: rows ground truth, columns prediction; void ids skipped."""
    m = np.zeros((num_classes, num_classes), np.int64)
    for pred, gt in zip(preds, labels, strict=True):
        for t, p in zip(gt.ravel().tolist(), pred.ravel().tolist(), strict=True):
            if t < num_classes:
                m[t, p] += 1
    return m


def hand_scores(m: np.ndarray) -> dict:
    """Compute IoU = TP / (TP + FP + FN) per class in truth or prediction (paper eq. 1)."""
    per_class = {}
    for c in range(len(m)):
        tp, fn, fp = m[c, c], m[c].sum() - m[c, c], m[:, c].sum() - m[c, c]
        if tp + fp + fn:
            per_class[c] = tp / (tp + fp + fn)
    return {"per_class": per_class, "miou": sum(per_class.values()) / len(per_class),
            "global_acc": np.trace(m) / m.sum()}


@torch.no_grad()
def reference_predictions(model, frames, mean, std, net_hw=None):
    """Labels at each frame's size: (subsample), normalise, forward, upsample logits, argmax.

    ``net_hw`` must be half the frame size; frames built of 2x2 blocks halve exactly.
    """
    preds = []
    for frame in frames:
        small = frame[::2, ::2] if net_hw else frame
        if net_hw:
            assert small.shape[:2] == tuple(net_hw)
        x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None].float() / 255
        x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        logits = model.eval()(x)
        logits = F.interpolate(logits, size=frame.shape[:2], mode="bilinear",
                               align_corners=False)
        preds.append(logits.argmax(1)[0].numpy())
    return preds


def read_tree(root: Path, split: str = "val"):
    names = sorted(p.name for p in (root / split).iterdir())
    frames = [cv2.imread(str(root / split / n))[:, :, ::-1] for n in names]
    labels = [cv2.imread(str(root / f"{split}annot" / n), cv2.IMREAD_UNCHANGED) for n in names]
    return frames, labels


def test_an_unwritable_save_vis_folder_fails_before_scoring(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a file where a folder is asked for")
    # A checkpoint that does not exist: had the model been loaded first, that would be
    # the error (a CheckpointError, not this ValueError).
    with pytest.raises(ValueError, match=r"--save-vis .*afile/sub: cannot write there \("):
        evaluate_checkpoint(str(tmp_path / "missing.pt"), "camvid", str(tmp_path), "val",
                            save_vis=str(blocker / "sub"))


def test_evaluate_checkpoint_scores_at_label_size_and_saves_vis(tmp_path):
    root = _camvid_tree(tmp_path / "camvid")
    model = seeded_model()
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", model=model, half=False)
    res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", save_vis=str(tmp_path / "v"),
                              vis_count=2)
    frames, labels = read_tree(root)
    # Network ran at 24x18, the scores are at the labels' 48x36: logits upsampled, not
    # labels shrunk; every non-void label pixel counted once.
    preds = reference_predictions(model, frames, [0.5] * 3, [0.25] * 3, net_hw=(18, 24))
    assert len(np.unique(np.concatenate([p.ravel() for p in preds]))) >= 4  # labels vary
    expected = hand_confusion(preds, labels, CAMVID.num_classes)
    assert res["pixels"] == sum(int((lab != 11).sum()) for lab in labels) == expected.sum()
    assert res["frames"] == 3 and res["resolution"] == [24, 18]
    assert np.array_equal(np.array(res["confusion_matrix"]), expected)
    want = hand_scores(expected)
    assert res["per_class"] == pytest.approx(
        {CAMVID.names[c]: v for c, v in want["per_class"].items()}, abs=1e-12)
    assert res["miou"] == pytest.approx(want["miou"], abs=1e-12)
    assert res["global_acc"] == pytest.approx(want["global_acc"], abs=1e-12)
    pngs = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert pngs == ["000_0016E5_00000.png", "001_0016E5_00001.png", "confusion_matrix.png",
                    "per_class_iou.png"]
    # frame | gap | truth in palette colours (void black) | gap | prediction in colours
    palette = CAMVID.palette()
    for k in range(2):
        side = cv2.imread(str(tmp_path / "v" / pngs[k]))[:, :, ::-1]
        assert side.shape == (36, 3 * 48 + 8, 3)
        truth = np.where((labels[k] == 11)[..., None], 0, palette[np.minimum(labels[k], 10)])
        assert np.array_equal(side[:, :48], frames[k])
        assert np.array_equal(side[:, 52:100], truth)
        assert np.array_equal(side[:, 104:], palette[preds[k]])


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
    model = seeded_model()
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", model=model, half=False)
    assert evaluate_cli.run(_cli_args(checkpoint=ckpt, data_root=root, split="val",
                                      resolution="48x36", device="cpu", json=True)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 2 and out["resolution"] == [48, 36]
    frames, labels = read_tree(root)
    want = hand_scores(hand_confusion(reference_predictions(model, frames, [0.5] * 3,
                                                            [0.25] * 3), labels, 11))
    assert out["miou"] == pytest.approx(want["miou"], abs=1e-12)
    assert out["global_acc"] == pytest.approx(want["global_acc"], abs=1e-12)
    assert out["per_class"] == pytest.approx(
        {CAMVID.names[c]: v for c, v in want["per_class"].items()}, abs=1e-12)
    assert evaluate_cli.run(_cli_args(checkpoint=ckpt, data_root=root, resolution="48x36",
                                      device="cpu")) == 0
    table = capsys.readouterr().out.splitlines()
    # The table states the same numbers, in percent with two decimals.
    assert f"{100 * out['miou']:6.2f}" in next(line for line in table if "mIoU" in line)
    row = next(line for line in table if line.startswith("Bicyclist"))
    value = out["per_class"].get("Bicyclist")
    assert ("n/a" in row) if value is None else (f"{100 * value:6.2f}" in row)
    missing = _cli_args(checkpoint=tmp_path / "nope.pt", data_root=root)
    assert evaluate_cli.run(missing) == EXIT_ERROR
    assert "nope.pt" in capsys.readouterr().err


def test_cli_class_colors_recolour_the_pictures_not_the_scores(tmp_path, capsys):
    root = _camvid_tree(tmp_path / "camvid", frames=2)
    model = seeded_model()
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", model=model, half=False)
    colours = tmp_path / "colours.yaml"
    colours.write_text("road: '#0a141e'\nSKY: [1, 2, 3]\n")  # loose names, as segment-bag
    common = {"checkpoint": ckpt, "data_root": root, "split": "val", "resolution": "48x36",
              "device": "cpu", "json": True, "vis_count": 1}
    assert evaluate_cli.run(_cli_args(save_vis=tmp_path / "a", **common)) == 0
    plain = json.loads(capsys.readouterr().out)
    assert evaluate_cli.run(_cli_args(save_vis=tmp_path / "b", class_colors=colours,
                                      **common)) == 0
    assert json.loads(capsys.readouterr().out) == plain
    frames, labels = read_tree(root)
    pred = reference_predictions(model, frames[:1], [0.5] * 3, [0.25] * 3)[0]
    palette = CAMVID.palette().copy()
    palette[CAMVID.names.index("Road")] = (10, 20, 30)
    palette[CAMVID.names.index("Sky")] = (1, 2, 3)
    name = "000_0016E5_00000.png"
    side = cv2.imread(str(tmp_path / "b" / name))[:, :, ::-1]
    truth = np.where((labels[0] == 11)[..., None], 0, palette[np.minimum(labels[0], 10)])
    assert np.array_equal(side[:, 52:100], truth)
    assert np.array_equal(side[:, 104:], palette[pred])
    assert not np.array_equal(side, cv2.imread(str(tmp_path / "a" / name))[:, :, ::-1])
    # A bad file or one without --save-vis: an error naming it, before any scoring.
    colours.write_text("Lorry: [1, 2, 3]\n")
    assert evaluate_cli.run(_cli_args(save_vis=tmp_path / "c", class_colors=colours,
                                      **common)) == EXIT_ERROR
    assert "colours.yaml" in capsys.readouterr().err
    assert evaluate_cli.run(_cli_args(class_colors=colours, **common)) == EXIT_ERROR
    assert "add --save-vis" in capsys.readouterr().err


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


def test_evaluate_runs_the_engine_that_segment_bag_runs(tmp_path):
    """Check that evaluate's labels are the engine's own at an input size it takes.

    Frame by frame (segment-bag's and the node's path, at their speed), scored at label
    size.
    """
    from canet_ros.inference import SegmentationEngine

    root = _camvid_tree(tmp_path / "camvid", frames=2)
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", half=False)
    res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", resolution=(32, 32))
    engine = SegmentationEngine(ckpt, device="cpu", precision="fp32", resolution=(32, 32))
    assert res["runtime"] == engine.runtime != "torch"
    frames, labels = read_tree(root)
    preds = [engine.infer(np.ascontiguousarray(f), "rgb").labels for f in frames]
    assert preds[0].shape == labels[0].shape  # at label size, not the network's
    assert np.array_equal(np.array(res["confusion_matrix"]), hand_confusion(preds, labels, 11))

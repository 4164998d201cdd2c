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

"""Diverged training stops; crops without a labelled pixel; crops batch norm cannot train on.

A run whose loss or weights turn inf/nan stops with one line (exit 1) and leaves no
non-finite tensor in any checkpoint; a batch whose pixels are all the ignore id has no loss
and stays out of the epoch's mean; a crop the backbone reduces to 1x1 at batch 1 is refused
before training with the flags to change.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import make_camvid_tree, tiny_config

from canet_ros.classes import ClassSet
from canet_ros.cli import main
from canet_ros.data import write_dataset
from canet_ros.models import build_canet
from canet_ros.models.backbones import BACKBONES
from canet_ros.training.epoch_stats import EpochStats
from canet_ros.training.trainer import Trainer

IGNORE = 255
TWO = ClassSet("two", ("road", "car"), ((128, 64, 128), (0, 0, 142)), IGNORE)


def tensors(obj):
    """Yield every floating-point tensor nested in a checkpoint's dicts and lists."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors(v)


def assert_all_finite(run: Path):
    """Every .pt in ``run`` holds finite tensors only (weights, EMA, optimiser state)."""
    for pt in sorted(run.glob("*.pt")):
        blob = torch.load(pt, map_location="cpu", weights_only=True)
        bad = sum(1 for t in tensors(blob) if not torch.isfinite(t).all())
        assert bad == 0, f"{pt.name}: {bad} non-finite tensors"


def train(capsys, *args):
    """Run ``canet train``; return (exit status, stdout, stderr)."""
    rc = main(["train", "--no-progress", "--workers", "0", "--threads", "1", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return make_camvid_tree(tmp_path_factory.mktemp("camvid"))


def common(root: Path, run: Path):
    return ["--dataset", "camvid", "--data-root", root, "--out-dir", run, "--batch-size", 2,
            "--crop-size", 48, 32, "--eval-batch-size", 4]


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_absurd_lr_stops_and_keeps_the_last_good_checkpoint(camvid, tmp_path, capsys, ema):
    run = tmp_path / "run"
    # One good epoch (4 frames, batch 2: 2 steps), then a resume at lr 1e12.
    rc, _, err = train(capsys, *common(camvid, run), "--epochs", 4, "--lr", 1e-3,
                       "--max-steps-this-run", 2, "--ema-decay", ema)
    assert rc == 0, err
    good = (run / "last.pt").read_bytes()
    rc, out, err = train(capsys, "--resume", run / "last.pt", "--lr", 1e12, "--no-progress",
                         "--export", run / "model.pt")
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("canet train: error: training diverged at "
                                                   "step "), err
    assert "lower --lr" in lines[0] and "(lr " in lines[0]
    assert not (run / "model.pt").exists()
    assert (run / "last.pt").read_bytes() == good  # the resumable one, untouched
    assert_all_finite(run)
    with open(run / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)


def test_absurd_lr_from_the_start_writes_no_checkpoint_with_nan(camvid, tmp_path, capsys):
    run = tmp_path / "run"
    rc, _, err = train(capsys, *common(camvid, run), "--epochs", 3, "--lr", 1e12)
    assert rc == 1 and "training diverged at step" in err and "lower --lr" in err
    assert not (run / "best.pt").exists()  # nothing finite was ever validated
    assert_all_finite(run)


def test_a_nan_score_never_beats_a_finite_one():
    from canet_ros.training.validate import better

    nan, inf = float("nan"), float("inf")
    assert not better(nan, -inf) and not better(nan, 0.2)
    assert better(0.2, nan) and better(0.0, -inf) and better(0.3, 0.2)
    assert not better(0.2, 0.2) and not better(0.1, 0.2)


def test_epoch_stats_leave_batches_without_loss_out_of_the_mean():
    s = EpochStats()
    s.add(2.0, 2, 1e-3)
    s.add(None, 2, 1e-3)
    s.add(0.5, 2, 1e-3)
    assert s.images == 6 and s.mean_loss == pytest.approx((2.0 * 2 + 0.5 * 2) / 4)
    # A last.pt of the version before counts every image as having a loss.
    old = EpochStats.from_state({"loss_sum": 3.0, "images": 4, "seconds": 1.0, "lr": 0.1})
    assert old.mean_loss == pytest.approx(0.75)
    assert math.isnan(EpochStats(0.0, 4, 0.0, None, 0).mean_loss)


def part_labelled(root: Path) -> Path:
    """Write four 64x48 training frames, two of them with no labelled pixel at all."""
    rng = np.random.default_rng(0)
    items = []
    for i, labelled in enumerate([True, False, True, False, True, True]):
        mask = np.full((48, 64), IGNORE, np.uint8)
        if labelled:
            mask[24:, :32], mask[24:, 32:] = 0, 1
        image = np.where(mask[..., None] == 1, 200, 60).astype(np.uint8).repeat(3, axis=2)
        image = np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
        items.append((f"f{i}", image, mask))
    return write_dataset(root, TWO, items, {"train": ["f0", "f1", "f2", "f3"],
                                            "val": ["f4", "f5"]})


class Recording(torch.nn.CrossEntropyLoss):
    """The trainer's loss, recording each step's value and whether it had a labelled pixel."""

    def __init__(self, criterion: torch.nn.CrossEntropyLoss):
        super().__init__(weight=criterion.weight, ignore_index=criterion.ignore_index)
        self.steps = []

    def forward(self, logits, target):
        loss = super().forward(logits, target)
        self.steps.append((float(loss.detach()), bool((target != self.ignore_index).any())))
        return loss


@pytest.mark.parametrize("weighting", ["enet", "none"])
def test_batches_without_labelled_pixels_leave_train_loss_finite(tmp_path, weighting):
    root = part_labelled(tmp_path / "data")
    cfg = tiny_config(root, tmp_path / "run", dataset="folder", epochs=2, batch_size=1,
                      crop_size=[64, 48], scale_min=1.0, scale_max=1.0, lr=1e-3,
                      val_sets=[{"name": "val", "split": "val"}], class_weighting=weighting,
                      cutmix=0.0)
    trainer = Trainer(cfg)
    trainer.criterion = Recording(trainer.criterion)
    trainer.fit()
    with open(tmp_path / "run" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = trainer.criterion.steps
    assert len(rows) == 2 and len(steps) == 8
    for epoch, row in enumerate(rows):
        mine = steps[4 * epoch:4 * epoch + 4]
        assert sum(1 for _, labelled in mine if not labelled) == 2  # two unlabelled frames
        expected = sum(v for v, labelled in mine if labelled) / 2  # batch 1: per-step mean
        assert float(row["train_loss"]) == pytest.approx(expected, rel=1e-6)
    assert_all_finite(tmp_path / "run")


def test_cutmix_batches_without_labelled_pixels_stay_finite(tmp_path):
    root = part_labelled(tmp_path / "data")
    cfg = tiny_config(root, tmp_path / "run", dataset="folder", epochs=1, batch_size=2,
                      crop_size=[64, 20], scale_min=1.0, scale_max=1.0, lr=1e-3, cutmix=1.0,
                      val_sets=[{"name": "val", "split": "val"}])
    trainer = Trainer(cfg)
    trainer.criterion = Recording(trainer.criterion)
    trainer.fit()
    with open(tmp_path / "run" / "log.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    labelled = [v for v, has in trainer.criterion.steps if has]
    # Seed 3 pairs the two unlabelled frames in one batch: one step each kind.
    assert len(labelled) == 1 and len(trainer.criterion.steps) == 2
    assert float(row["train_loss"]) == pytest.approx(labelled[0], rel=1e-6)
    assert_all_finite(tmp_path / "run")


def batch_norm_fails(backbone: str, width: int, height: int) -> bool:
    """Whether a real training step of one frame fails in batch norm (the peer check)."""
    torch.manual_seed(0)
    model = build_canet(backbone, 2, pretrained_backbone=None).train()
    try:
        model(torch.randn(1, 3, height, width))
    except ValueError as exc:
        assert "Expected more than 1 value per channel" in str(exc)
        return True
    return False


class Cfg:
    def __init__(self, crop, batch=1, late=None, late_epochs=0, epochs=2, layers="all"):
        self.crop_size, self.batch_size, self.late_crop_size = crop, batch, late
        self.late_crop_epochs, self.epochs, self.train_layers = late_epochs, epochs, layers
        self.device = "cpu"


@pytest.mark.parametrize("backbone", BACKBONES)
def test_crop_check_agrees_with_a_real_training_step(backbone):
    from canet_ros.training.crop_check import check_crop

    for w, h in ((32, 32), (33, 32), (32, 33), (20, 12)):
        fails = batch_norm_fails(backbone, w, h)
        if fails:
            with pytest.raises(ValueError, match=r"--crop-size .* --batch-size 1.* 33 px"):
                check_crop(Cfg([w, h]), backbone)
        else:
            check_crop(Cfg([w, h]), backbone)
        assert fails == (w <= 32 and h <= 32)  # the stride-32 map of a side up to 32 is 1
    check_crop(Cfg([32, 32], batch=2), backbone)  # two frames: two values per channel
    with pytest.raises(ValueError, match="--late-crop-size 32 16"):
        check_crop(Cfg([64, 64], late=[32, 16], late_epochs=1), backbone)


def test_crop_check_counts_only_crops_and_layers_that_train():
    from canet_ros.training.crop_check import check_crop
    from canet_ros.training.transfer import freeze_layers

    # A late crop no epoch uses (late_crop_epochs 0), and an early crop every epoch skips.
    check_crop(Cfg([64, 48], late=[32, 32], late_epochs=0), "mobilenetv2")
    check_crop(Cfg([32, 32], late=[64, 48], late_epochs=2, epochs=2), "mobilenetv2")
    # Frozen layers stay in eval mode: their batch norms need no second value.
    for layers, w, h in (("classifier", 16, 16), ("head", 32, 32), ("decoder", 24, 32),
                         ("decoder", 16, 16), ("head", 8, 8)):
        model = build_canet("mobilenetv2", 2, pretrained_backbone=None)
        freeze_layers(model, layers)
        try:
            model.train()(torch.randn(1, 3, h, w))
            fails = False
        except ValueError as exc:
            assert "Expected more than 1 value per channel" in str(exc)
            fails = True
        if fails:
            with pytest.raises(ValueError, match=f"--crop-size {w} {h}"):
                check_crop(Cfg([w, h], layers=layers), "mobilenetv2")
        else:
            check_crop(Cfg([w, h], layers=layers), "mobilenetv2")


def test_cli_refuses_the_crop_in_one_line_before_training(camvid, tmp_path, capsys):
    run = tmp_path / "run"
    rc, out, err = train(capsys, "--dataset", "camvid", "--data-root", camvid, "--out-dir", run,
                         "--batch-size", 1, "--crop-size", 32, 24, "--epochs", 1)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--crop-size 32 24" in lines[0] and "--batch-size" in lines[0]
    assert "33 px" in lines[0] and "output stride 32" in lines[0]
    assert not (run / "log.csv").exists() and "train:" not in out  # before the data loaded

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

"""Training: schedule and class weights by hand, config precedence, and real (tiny) runs."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from test_evaluate import hand_confusion, hand_scores, read_tree, reference_predictions

from canet_ros.checkpoint import load_checkpoint, read_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.training import (
    PolyLR,
    TrainConfig,
    class_pixel_counts,
    enet_class_weights,
    merge_config,
    poly_factor,
)
from canet_ros.training.config import add_config_arguments, config_from_args
from canet_ros.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def make_camvid_tree(root: Path, frames: int = 4, size=(64, 48), seed: int = 0) -> Path:
    """SegNet-layout CamVid folders whose frame colours encode the labels (learnable)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pal = CAMVID.palette()
    for split, prefix in (("train", "0006R0"), ("val", "0016E5")):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            cuts = np.sort(rng.integers(4, w - 4, 3))
            classes = rng.choice([0, 1, 3, 8], 4)
            label = np.zeros((h, w), np.uint8)
            edges = [0, *cuts.tolist(), w]
            for k in range(4):
                label[:, edges[k]:edges[k + 1]] = classes[k]
            label[: h // 8] = 11  # a void band, as in CamVid
            img = pal[np.minimum(label, 10)].astype(np.int16) + rng.integers(-20, 20, (h, w, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            name = f"{prefix}_{i:05d}.png"
            cv2.imwrite(str(root / split / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / f"{split}annot" / name), label)
    return root


def tiny_config(root: Path, out: Path, **overrides) -> TrainConfig:
    values = {"data_root": str(root), "out_dir": str(out), "epochs": 2, "batch_size": 2,
              "lr": 1e-3, "crop_size": [48, 32], "scale_min": 0.75, "scale_max": 1.25,
              "workers": 0, "threads": 1, "val_every": 1, "eval_batch_size": 4,
              "progress": False, "cache": True, "channels_last": False, "seed": 3}
    values.update(overrides)
    return merge_config({}, values)


# -- pure functions -------------------------------------------------------------------------
def test_poly_factor_matches_hand_values():
    # (1 - 25/100) ** 0.9 = 0.75 ** 0.9 = exp(0.9 * ln 0.75)
    assert poly_factor(25, 100, 0.9) == pytest.approx(0.7719, abs=1e-4)
    assert poly_factor(0, 100) == 1.0
    assert poly_factor(50, 100, 1.0) == pytest.approx(0.5)
    assert poly_factor(100, 100) == 0.0
    assert poly_factor(150, 100) == 0.0


def test_poly_scheduler_follows_formula_per_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-4)
    sched = PolyLR(opt, total_steps=10, power=0.9)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [1e-4 * (1 - s / 10) ** 0.9 for s in range(10)]
    assert seen == pytest.approx(expected, rel=1e-9)
    assert seen[3] == pytest.approx(1e-4 * 0.7 ** 0.9)  # 7.2538e-05
    assert opt.param_groups[0]["lr"] == 0.0


def test_enet_class_weights_by_hand():
    labels = [np.array([[0, 0, 0, 1], [1, 2, 11, 11]]), np.array([[11, 7]])]
    counts = class_pixel_counts(labels, num_classes=3, ignore_index=11)
    # The 7 is out of range for 3 classes and the 11s are void: neither is counted.
    assert counts.tolist() == [3, 2, 1]
    w = enet_class_weights(counts, c=1.02)
    # p = 3/6, 2/6, 1/6 -> 1/ln(1.52), 1/ln(1.35333), 1/ln(1.18667)
    assert w == pytest.approx([2.38829, 3.30502, 5.84290], abs=1e-4)
    assert w[0] == pytest.approx(1 / math.log(1.02 + 0.5))
    assert enet_class_weights(np.array([5, 0]))[1] == pytest.approx(1 / math.log(1.02))


def test_config_precedence_defaults_yaml_cli(tmp_path):
    import argparse

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"lr": 0.01, "batch_size": 4, "train_exclude": ["0001TP"]}))
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--config", str(cfg_file), "--batch-size", "2", "--no-flip",
                              "--val-sets", "val=val", "held=train:0001TP"])
    cfg = config_from_args(args)
    assert cfg.lr == 0.01  # from YAML
    assert cfg.batch_size == 2  # CLI beats YAML
    assert cfg.weight_decay == 1e-4 and cfg.optimizer == "adam"  # paper defaults
    assert cfg.poly_power == 0.9 and cfg.flip is False
    assert cfg.train_exclude == ["0001TP"]
    assert cfg.val_sets[1] == {"name": "held", "split": "train", "include": ["0001TP"]}
    with pytest.raises(ValueError, match="unknown training option"):
        merge_config({"learning_rate": 1.0})


def test_shipped_config_parses():
    data = yaml.safe_load((REPO / "canet_ros/training/configs/camvid_mobilenetv2.yaml")
                          .read_text())
    cfg = merge_config(data)
    assert cfg.backbone == "mobilenetv2" and "0001TP" in cfg.train_exclude
    fine = merge_config(yaml.safe_load(
        (REPO / "canet_ros/training/configs/camvid_mobilenetv2_finetune.yaml").read_text()))
    assert fine.train_exclude == [] and fine.photometric > 0 and fine.init_weights is None


@pytest.mark.parametrize("path", sorted((REPO / "canet_ros/training/configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_bundled_config_parses(path):
    cfg = merge_config(yaml.safe_load(path.read_text()))  # unknown options raise
    # The own-data config leaves the backbone to the --init-weights checkpoint.
    assert cfg.backbone == (None if path.name.startswith("own_data") else "mobilenetv2")
    assert cfg.dataset == ("folder" if path.name.startswith("own_data") else "camvid")


# -- real training on a tiny synthetic dataset ----------------------------------------------
def test_overfit_loss_falls_and_run_artifacts(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    cfg = tiny_config(root, tmp_path / "run", epochs=12, lr=3e-3, scale_min=1.0, scale_max=1.0)
    best = Trainer(cfg).fit()
    rows = (tmp_path / "run" / "log.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("train_loss")]) for r in rows[1:]]
    assert len(losses) == 12
    assert losses[-1] < 0.6 * losses[0], losses
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["epochs"] == 12 and saved["mean"] and saved["class_weights"]
    model, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    assert meta["train_args"]["lr"] == 3e-3 and meta["input_size"] == [64, 48]
    assert meta["mean"] == pytest.approx(saved["mean"])
    # best.pt is the epoch with the top validation score, and that score is the mIoU of
    # its weights on the val frames, recomputed here by hand.
    scores = [float(r.split(",")[header.index("val_miou")]) for r in rows[1:]]
    assert best["epoch"] == 1 + scores.index(max(scores)) and best["val"]["miou"] == max(scores)
    frames, labels = read_tree(root)
    preds = reference_predictions(model, frames, meta["mean"], meta["std"])
    want = hand_scores(hand_confusion(preds, labels, CAMVID.num_classes))
    assert best["val"]["miou"] == pytest.approx(want["miou"], abs=1e-6)
    assert best["val"]["global_acc"] == pytest.approx(want["global_acc"], abs=1e-6)
    assert best["val"]["miou"] > scores[0]  # it learned: better than after epoch 1
    assert "train_state" in read_checkpoint(tmp_path / "run" / "last.pt")
    assert any((tmp_path / "run" / "tb").iterdir())


def _weights(path: Path) -> dict:
    return read_checkpoint(path)["state_dict"]


def test_resume_mid_epoch_is_exact(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    # 4 frames, batch 2 -> 2 steps per epoch, 4 in all; split after 3 (mid-epoch 2).
    straight = tiny_config(root, tmp_path / "a")
    Trainer(straight).fit()
    first = tiny_config(root, tmp_path / "b", max_steps_this_run=3)
    Trainer(first).fit()
    state = read_checkpoint(tmp_path / "b" / "last.pt")["train_state"]
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 3)
    second = tiny_config(root, tmp_path / "b", resume=str(tmp_path / "b" / "last.pt"))
    Trainer(second).fit()
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = read_checkpoint(tmp_path / "a" / "last.pt")["train_state"]
    sb = read_checkpoint(tmp_path / "b" / "last.pt")["train_state"]
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 4
    assert torch.equal(sa["epoch_rng"]["torch"], sb["epoch_rng"]["torch"])


class _InterruptAt:
    """Transform wrapper that delivers SIGINT to this process at the n-th sample."""

    def __init__(self, inner, n: int):
        self.inner, self.n, self.calls = inner, n, 0

    def __call__(self, image, label):
        self.calls += 1
        if self.calls == self.n:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner(image, label)


def test_ctrl_c_leaves_resumable_checkpoint(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    trainer = Trainer(tiny_config(root, tmp_path / "run"))
    trainer.data.train.transform = _InterruptAt(trainer.data.train_transform, 3)
    trainer.fit()  # must return normally, not raise KeyboardInterrupt
    state = read_checkpoint(tmp_path / "run" / "last.pt")["train_state"]
    assert state["global_step"] == 2  # the step in flight finished, then it stopped
    load_checkpoint(tmp_path / "run" / "last.pt")  # usable for inference as is
    Trainer(tiny_config(root, tmp_path / "run", resume=str(tmp_path / "run" / "last.pt"))).fit()
    assert read_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["global_step"] == 4


@pytest.mark.skipif(not hasattr(torch.distributed, "is_gloo_available")
                    or not torch.distributed.is_gloo_available(), reason="no gloo backend")
def test_torchrun_ddp_two_processes(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid", frames=4)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), "-m", "canet_ros.cli.train",
           "--data-root", str(root), "--out-dir", str(tmp_path / "ddp"), "--epochs", "1",
           "--batch-size", "1", "--crop-size", "48", "32", "--workers", "0", "--threads", "1",
           "--no-progress", "--no-channels-last", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = read_checkpoint(tmp_path / "ddp" / "last.pt")["train_state"]
    assert state["global_step"] == 2  # 4 frames / (2 processes x batch 1)
    assert (tmp_path / "ddp" / "best.pt").is_file()

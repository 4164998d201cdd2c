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

"""Leave-one-drive-out training, joined splits, EMA, new augmentations, portable metadata."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from canet_ros.checkpoint import read_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.data import build_dataset
from canet_ros.data.transforms import random_blur, random_rotate
from canet_ros.evaluation import seen_in_training
from canet_ros.training import merge_config
from canet_ros.training.config import portable_train_args, resolve_train_args
from canet_ros.training.data_setup import build_data
from canet_ros.training.ema import ModelEMA
from canet_ros.training.export import export_checkpoint
from canet_ros.training.trainer import Trainer
from canet_ros.training.validate import selection_score

REPO = Path(__file__).resolve().parents[1]
# (split, drive, frames): three drives in train, one of them also in val, as in CamVid.
LAYOUT = (("train", "0001TP", 2), ("train", "0006R0", 3), ("train", "0016E5", 2),
          ("val", "0016E5", 2))


def make_drives(root: Path, size=(64, 48)) -> Path:
    """SegNet-layout folders; each frame's colours encode its label (learnable, checkable)."""
    rng = np.random.default_rng(1)
    w, h = size
    pal = CAMVID.palette()
    for split, drive, count in LAYOUT:
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            label = np.zeros((h, w), np.uint8)
            cuts = sorted(rng.integers(6, w - 6, 2).tolist())
            for k, (a, b) in enumerate(zip([0, *cuts], [*cuts, w], strict=True)):
                label[:, a:b] = (0, 3, 8)[k]
            img = pal[label].astype(np.uint8)
            name = f"{drive}_{i:05d}.png"
            cv2.imwrite(str(root / split / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / f"{split}annot" / name), label)
    return root


def tiny(root: Path, out: Path, **overrides):
    values = {"data_root": str(root), "out_dir": str(out), "epochs": 2, "batch_size": 2,
              "lr": 1e-3, "crop_size": [48, 32], "scale_min": 0.75, "scale_max": 1.25,
              "workers": 0, "threads": 1, "val_every": 1, "eval_batch_size": 4,
              "progress": False, "cache": True, "channels_last": False, "seed": 3,
              "train_split": "train+val", "val_sets": [], "holdout": "0006R0"}
    values.update(overrides)
    return merge_config({}, values)


@pytest.fixture(scope="module")
def drives(tmp_path_factory):
    return make_drives(tmp_path_factory.mktemp("camvid"))


# -- data -------------------------------------------------------------------------------------
def test_joined_splits_hold_every_frame_once(drives):
    ds = build_dataset("camvid", drives, "train+val")
    names = [f"{p[0].parent.name}/{p[0].name}" for p in ds.pairs]
    assert len(names) == sum(n for _, _, n in LAYOUT) == len(set(names))
    assert ds.split == "train+val"
    # A filter that empties one split leaves the other; emptying all is an error.
    only_tp = build_dataset("camvid", drives, "train+val", include=["0001TP"])
    assert [p[0].name for p in only_tp.pairs] == ["0001TP_00000.png", "0001TP_00001.png"]
    with pytest.raises(Exception, match="no frames"):
        build_dataset("camvid", drives, "train+val", include=["Seq05VD"])


def test_holdout_removes_the_drive_and_scores_it(drives, tmp_path):
    bundle = build_data(tiny(drives, tmp_path), verbose=False)
    train = sorted(p[0].name for p in bundle.train.pairs)
    assert not any(n.startswith("0006R0") for n in train)
    assert len(train) == 2 + 2 + 2  # 0001TP, 0016E5 train, 0016E5 val
    assert [s["name"] for s in bundle.val_specs] == ["heldout_0006R0"]
    held = sorted(p[0].name for p in bundle.val[0].pairs)
    assert held == [f"0006R0_{i:05d}.png" for i in range(3)]


def test_selection_score_prefers_select_on_then_holdout(drives, tmp_path):
    results = {"val": {"miou": 0.8}, "heldout_0006R0": {"miou": 0.5}}
    cfg = tiny(drives, tmp_path, val_sets=[{"name": "val", "split": "val"}])
    assert selection_score(results, cfg) == (0.5, "mIoU of heldout_0006R0")
    cfg = tiny(drives, tmp_path, val_sets=[{"name": "val", "split": "val"}], select_on="val")
    assert selection_score(results, cfg) == (0.8, "mIoU of val")
    cfg = tiny(drives, tmp_path, val_sets=[{"name": "val", "split": "val"}], holdout=None)
    assert selection_score({"val": {"miou": 0.8}, "b": {"miou": 0.4}}, cfg)[0] == \
        pytest.approx(0.6)
    with pytest.raises(ValueError, match="select_on 'nope' is not a validation set"):
        tiny(drives, tmp_path, select_on="nope")


# -- EMA --------------------------------------------------------------------------------------
def test_ema_follows_the_formula_by_hand():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.5)
    # Warm-up decays: min(0.5, 1/10) = 0.1, then min(0.5, 2/11) = 0.1818...
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # 0.1 * 1 + 0.9 * 3 = 2.8
    assert float(ema.module.weight) == pytest.approx(2.8)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema.update(model)  # (2/11) * 2.8 + (9/11) * 0 = 0.50909
    assert float(ema.module.weight) == pytest.approx(2.8 * 2 / 11)
    assert ema.decay_at(10_000) == 0.5
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_run_resumes_exactly_and_exports_the_average(drives, tmp_path):
    straight = Trainer(tiny(drives, tmp_path / "a", ema_decay=0.9, epochs=1))
    straight.fit()
    first = Trainer(tiny(drives, tmp_path / "b", ema_decay=0.9, epochs=1, max_steps_this_run=2))
    first.fit()
    second = Trainer(tiny(drives, tmp_path / "b", ema_decay=0.9, epochs=1,
                          resume=str(tmp_path / "b" / "last.pt")))
    second.fit()
    for key, value in straight.ema.module.state_dict().items():
        assert torch.equal(value, second.ema.module.state_dict()[key]), key
    # best.pt (chosen on the held-out drive) holds the averaged weights, not the raw ones.
    best = read_checkpoint(tmp_path / "a" / "best.pt")
    assert best["metrics"]["ema"] is True
    raw = straight.bare_model.state_dict()
    avg = straight.ema.module.state_dict()
    key = next(k for k, v in raw.items()
               if v.dtype.is_floating_point and not torch.equal(v, avg[k]))
    assert torch.equal(best["state_dict"][key], avg[key])
    out = export_checkpoint(tmp_path / "a" / "last.pt", tmp_path / "ship.pt", half=False)
    assert torch.equal(read_checkpoint(out)["state_dict"][key], avg[key])
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()[0].split(",")
    assert "heldout_0006R0_miou" in log and "heldout_0006R0_raw_miou" in log


def test_stop_message_counts_epochs_like_the_progress_bar(drives, tmp_path, capsys):
    Trainer(tiny(drives, tmp_path, epochs=3, max_steps_this_run=4)).fit()
    # 6 frames / batch 2 = 3 steps per epoch: step 4 is the first step of epoch 2 of 3.
    assert "stopped in epoch 2/3 after step 1/3" in capsys.readouterr().out


# -- augmentation -----------------------------------------------------------------------------
def test_rotation_keeps_frame_and_label_together():
    h, w = 90, 120
    label = np.zeros((h, w), np.uint8)
    label[:, 40:80] = 3
    label[30:60, :] = 8
    image = CAMVID.palette()[label].astype(np.uint8)
    seed = next(s for s in range(100)  # one whose angle (the first draw) exceeds 10 degrees
                if abs(40 * float(torch.rand((), generator=torch.Generator().manual_seed(s)))
                       - 20) > 10)
    torch.manual_seed(seed)
    rot_img, rot_lab = random_rotate(image, label, 20.0, ignore_index=11)
    assert rot_lab.shape == (h, w) and rot_img.shape == (h, w, 3)
    # A rotation about the centre uncovers the corners: ignored there, black in the frame.
    assert rot_lab[0, 0] == 11 and rot_lab[-1, -1] == 11 and not rot_img[0, 0].any()
    # The labelled pixels keep their frame colour (edges aside, where bilinear mixes).
    keep = rot_lab != 11
    match = np.all(rot_img == CAMVID.palette()[np.minimum(rot_lab, 10)], axis=-1)
    assert match[keep].mean() > 0.9
    assert (rot_lab != label)[keep].mean() > 0.02  # it did rotate


def test_blur_draws_the_same_numbers_whether_or_not_it_blurs():
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, 10:] = 255
    torch.manual_seed(5)
    kept = random_blur(image, 0.0)
    after_skip = torch.rand(())
    torch.manual_seed(5)
    blurred = random_blur(image, 1.0)
    after_blur = torch.rand(())
    assert np.array_equal(kept, image)
    assert not np.array_equal(blurred, image) and 0 < blurred[0, 10, 0] < 255
    assert torch.equal(after_skip, after_blur)  # resume replays the same stream


# -- portable metadata and held-out evaluation ------------------------------------------------
def test_saved_paths_are_relative_to_the_run(drives, tmp_path):
    run = tmp_path / "runs" / "x"
    cfg = tiny(drives, run, init_weights="default")
    saved = portable_train_args(cfg, run)
    assert saved["out_dir"] == "."
    assert saved["init_weights"] == "default"
    assert not os.path.isabs(saved["data_root"])
    assert Path(os.path.normpath(run / saved["data_root"])) == drives
    assert Path(resolve_train_args(saved, run)["data_root"]) == drives


def test_checkpoints_name_no_absolute_path(drives, tmp_path):
    Trainer(tiny(drives, tmp_path / "run", epochs=1)).fit()
    for name in ("last.pt", "best.pt"):
        args = read_checkpoint(tmp_path / "run" / name)["train_args"]
        for key, value in args.items():
            assert not (isinstance(value, str) and os.path.isabs(value)), (name, key, value)
    assert str(tmp_path) not in (tmp_path / "run" / "config.yaml").read_text()


def test_seen_in_training_by_split_and_drive():
    args = {"train_split": "train", "train_exclude": ["0001TP"], "holdout": None}
    frames = [Path("d/train/0001TP_1.png"), Path("d/train/0006R0_1.png"),
              Path("d/val/0016E5_1.png")]
    assert seen_in_training(args, frames) == 1  # only 0006R0 from train
    args = {"train_split": "train+val", "holdout": "0006R0"}
    assert seen_in_training(args, frames) == 2
    assert seen_in_training({}, frames) is None


def test_evaluate_holdout_cli_scores_the_drive(drives, tmp_path):
    Trainer(tiny(drives, tmp_path / "run", epochs=1)).fit()
    cmd = [sys.executable, "-m", "canet_ros.cli", "evaluate", "--checkpoint",
           str(tmp_path / "run" / "best.pt"), "--data-root", str(drives), "--holdout", "0006R0",
           "--resolution", "64x48", "--device", "cpu", "--json", "--tta"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["frames"] == 3 and result["split"] == "train+val"
    assert result["seen_in_training"] == 0
    assert result["tta"] == {"flip": True, "scales": [1.0]}
    assert "evaluate: 3/3 frame" in done.stderr


def test_evaluate_holdout_scores_the_set_the_run_selected_on(drives, tmp_path):
    from canet_ros.evaluation import evaluate_checkpoint
    # 0016E5 has 2 train and 2 val frames (LAYOUT): a run on train alone held out the 2.
    Trainer(tiny(drives, tmp_path / "own", epochs=1, train_split="train",
                 holdout="0016E5")).fit()
    own = str(tmp_path / "own" / "best.pt")
    kwargs = {"resolution": (64, 48), "device": "cpu"}
    result = evaluate_checkpoint(own, "camvid", str(drives), None, holdout="0016E5", **kwargs)
    assert (result["frames"], result["split"], result["include"]) == (2, "train", ["0016E5"])
    assert result["seen_in_training"] == 0
    # Another drive than the run held out: its frames of train+val (2, all trained on).
    other = evaluate_checkpoint(own, "camvid", str(drives), None, holdout="0001TP", **kwargs)
    assert (other["frames"], other["split"], other["seen_in_training"]) == (2, "train+val", 2)
    both = evaluate_checkpoint(own, "camvid", str(drives), "train+val", holdout="0016E5",
                               **kwargs)
    assert (both["frames"], both["seen_in_training"]) == (4, 0)  # val was never trained on
    with pytest.raises(ValueError, match="--exclude, not --include; for part of the drive "
                                         "give --split train --include PREFIX"):
        evaluate_checkpoint(own, "camvid", str(drives), None, holdout="0016E5",
                            include=["0016E5_00001"], **kwargs)
    narrowed = evaluate_checkpoint(own, "camvid", str(drives), None, holdout="0016E5",
                                   exclude=["0016E5_00001"], **kwargs)
    assert (narrowed["frames"], narrowed["include"], narrowed["exclude"]) == (
        1, ["0016E5"], ["0016E5_00001"])
    cmd = [sys.executable, "-m", "canet_ros.cli", "evaluate", "--checkpoint", own,
           "--data-root", str(drives), "--holdout", "0016E5", "--include", "0016E5_00001",
           "--resolution", "64x48", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1 and "takes --exclude, not --include" in done.stderr, done.stderr


# -- test-time augmentation -------------------------------------------------------------------
def test_flip_tta_is_mirror_symmetric_for_any_model():
    from canet_ros.evaluation import TTA, tta_probabilities

    torch.manual_seed(0)
    # A lopsided kernel: the plain prediction of a mirrored frame is not the mirrored one.
    model = torch.nn.Conv2d(3, 4, 5, padding=2).eval()
    x = torch.randn(1, 3, 12, 16)
    with torch.no_grad():
        plain = model(x).softmax(1)
        assert not torch.allclose(model(x.flip(-1)).softmax(1).flip(-1), plain, atol=1e-3)
        tta = TTA(flip=True)
        a = tta_probabilities(model, x, (12, 16), tta)
        b = tta_probabilities(model, x.flip(-1), (12, 16), tta)
        assert torch.allclose(a, b.flip(-1), atol=1e-6)
        assert torch.allclose(a, (plain + model(x.flip(-1)).softmax(1).flip(-1)) / 2, atol=1e-6)
        assert torch.allclose(tta_probabilities(model, x, (12, 16), TTA(flip=False)), plain,
                              atol=1e-6)
        assert torch.allclose(a.sum(1), torch.ones(1, 12, 16), atol=1e-5)
        # Scales resize the input and bring every prediction back to the output size.
        ms = tta_probabilities(model, x, (24, 32), TTA(flip=True, scales=(0.5, 1.0)))
        assert ms.shape == (1, 4, 24, 32) and TTA(flip=True, scales=(0.5, 1.0)).passes == 4


def test_shipped_checkpoint_names_no_absolute_path():
    blob = read_checkpoint("default")

    def strings(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    assert not [s for s in strings(meta) if os.path.isabs(s)]

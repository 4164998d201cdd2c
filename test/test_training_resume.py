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

"""Resuming and the schedule: `canet train --resume`, changed --epochs, the late crop phase.

Runs are tiny (4 synthetic 64x48 frames, batch 2, crops of 48x32) and go through the
command line or the Trainer, so what is checked is what a user gets.
"""
from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

import pytest
import torch
from test_training import make_camvid_tree, tiny_config

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training.trainer import Trainer


def flags(root: Path, out: Path, *extra: str) -> list:
    """`canet train` flags for a tiny 2-epoch run on the CPU (2 steps per epoch)."""
    return ["train", "--data-root", str(root), "--out-dir", str(out), "--epochs", "2",
            "--batch-size", "2", "--lr", "1e-3", "--crop-size", "48", "32",
            "--scale-min", "0.75", "--scale-max", "1.25", "--workers", "0", "--threads", "1",
            "--eval-batch-size", "4", "--seed", "3", "--device", "cpu", "--no-progress",
            "--no-channels-last", *extra]


def log_rows(run: Path) -> list:
    with open(run / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def record_applied_lr(optimizer: torch.optim.Optimizer) -> list:
    """Wrap ``optimizer.step`` to record the lr each call applies (what a step trains with)."""
    applied, real = [], optimizer.step

    @functools.wraps(real)  # keeps the scheduler's mark on it: no "overridden" warning
    def step(*args, **kwargs):
        applied.append(optimizer.param_groups[0]["lr"])
        return real(*args, **kwargs)

    optimizer.step = step
    return applied


def logged_lr(run: Path, stderr: str) -> tuple:
    """Return the lr TensorBoard's train/lr and the progress lines' ``lr=`` show per step."""
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator").EventAccumulator
    tb = accumulator(str(run / "tb"))
    tb.Reload()
    board = [(e.step, e.value) for e in tb.Scalars("train/lr")]
    return board, [float(v) for v in re.findall(r", lr=([-+.e0-9]+)", stderr)]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point the working directory and the default dataset folder into tmp_path.

    A resume that forgot the run's config would otherwise train on the real CamVid copy
    with the default recipe (and write runs/ into the repository) instead of failing.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CANET_CAMVID_ROOT", str(tmp_path / "no-default-dataset"))
    return tmp_path


def test_bare_resume_continues_with_the_runs_saved_config(isolated, capsys):
    root = make_camvid_tree(isolated / "camvid")
    assert canet_main(flags(root, isolated / "straight")) == 0
    assert canet_main(flags(root, isolated / "split", "--max-steps-this-run", "3")) == 0
    # Nothing but the checkpoint: data, recipe, seed and run folder come from the run.
    assert canet_main(["train", "--resume", str(isolated / "split" / "last.pt"),
                       "--export", str(isolated / "shipped.pt")]) == 0
    assert "error" not in capsys.readouterr().err
    done = read_checkpoint(isolated / "split" / "last.pt")
    assert done["train_state"]["global_step"] == 4  # 2 epochs x 2 steps, not a new run
    assert done["train_args"]["lr"] == 1e-3 and done["train_args"]["crop_size"] == [48, 32]
    straight = read_checkpoint(isolated / "straight" / "last.pt")["state_dict"]
    for key, value in straight.items():  # same data, recipe and RNG stream as straight
        assert torch.equal(value, done["state_dict"][key]), key
    assert not (isolated / "runs").exists()
    # --export wrote best.pt of that run as an fp16 shipping checkpoint.
    shipped, best = read_checkpoint(isolated / "shipped.pt"), read_checkpoint(
        isolated / "split" / "best.pt")
    assert "train_state" not in shipped
    for key, value in best["state_dict"].items():
        if value.is_floating_point():
            assert shipped["state_dict"][key].dtype == torch.float16, key
            assert torch.equal(shipped["state_dict"][key], value.half()), key


def test_an_export_correction_alone_ships_model_pt_once_the_run_is_done(isolated):
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    args = flags(root, run, "--export-prior-correction", "0.75", "--val-sets")
    assert canet_main([*args, "--max-steps-this-run", "1"]) == 0
    assert not (run / "model.pt").exists()  # stopped: nothing to ship yet
    assert canet_main(["train", "--resume", str(run / "last.pt")]) == 0
    # No validation set, so no best.pt: the run's last weights, bias shifted by hand:
    # 0.75 * (log w - mean log w) over the run's class weights.
    assert not (run / "best.pt").exists()
    last, shipped = read_checkpoint(run / "last.pt"), read_checkpoint(run / "model.pt")
    assert shipped["prior_correction"] == 0.75 and "train_state" not in shipped
    log_w = torch.tensor(last["train_args"]["class_weights"], dtype=torch.float64).log()
    bias = [k for k, v in last["state_dict"].items() if k.endswith("bias") and
            v.shape == (last["num_classes"],)][-1]
    expected = last["state_dict"][bias].double() - 0.75 * (log_w - log_w.mean())
    torch.testing.assert_close(shipped["state_dict"][bias].double(), expected,
                               atol=2e-3, rtol=0)  # fp16
    assert shipped["state_dict"][bias].dtype == torch.float16


def test_resume_with_more_epochs_re_aims_the_poly_schedule(isolated):
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "1", "--val-every", "9")) == 0
    # Same run, now 3 epochs: 6 steps in all, so the decay must end at step 6, not 4.
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--epochs", "3"]) == 0
    rows = log_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    # Each row: the lr its last step k trained with, 1e-3 * (1 - (k - 1) / 6) ** 0.9 (step 1
    # had the 4-step schedule, steps 2.. the re-aimed 6-step one).
    expected = [1e-3 * (5 / 6) ** 0.9, 1e-3 * (3 / 6) ** 0.9, 1e-3 * (1 / 6) ** 0.9]
    assert [float(r["lr"]) for r in rows] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert read_checkpoint(run / "last.pt")["train_args"]["epochs"] == 3


class _CropRecorder:
    """Wraps the training transform; records the (height, width) of each sample."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []

    def __call__(self, image, label):
        x, y = self.inner(image, label)
        self.sizes.append(tuple(y.shape))
        return x, y


def test_late_crop_size_is_used_for_the_last_epochs_only(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    cfg = tiny_config(root, tmp_path / "run", epochs=3, late_crop_size=[64, 48],
                      late_crop_epochs=1, val_every=9)
    trainer = Trainer(cfg)
    recorder = _CropRecorder(trainer.data.train_transform)
    trainer.data.train.transform = recorder
    trainer.fit()
    # 4 frames per epoch: epochs 1-2 at the 48x32 crop, epoch 3 at the late 64x48.
    assert recorder.sizes == [(32, 48)] * 8 + [(48, 64)] * 4


def test_resume_inside_the_late_phase_uses_the_late_crop(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    run = tmp_path / "run"
    late = {"late_crop_size": [64, 48], "late_crop_epochs": 1, "val_every": 9}
    Trainer(tiny_config(root, run, max_steps_this_run=3, **late)).fit()
    trainer = Trainer(tiny_config(root, run, resume=str(run / "last.pt"), **late))
    recorder = _CropRecorder(trainer.data.train_transform)
    trainer.data.train.transform = recorder
    trainer.fit()
    # Epoch 2 of 2: the replayed first batch and the last batch, all at the late size.
    assert recorder.sizes == [(48, 64)] * 4


def test_first_step_after_a_longer_resume_uses_the_re_aimed_lr(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    run = tmp_path / "run"
    Trainer(tiny_config(root, run, max_steps_this_run=1, val_every=9, device="cpu")).fit()
    trainer = Trainer(tiny_config(root, run, epochs=3, resume=str(run / "last.pt"),
                                  val_every=9, device="cpu"))
    used = []  # the lr each training step's optimizer.step() will apply
    trainer.bare_model.register_forward_pre_hook(
        lambda module, args: used.append(trainer.optimizer.param_groups[0]["lr"])
        if module.training else None)
    trainer.fit()
    # Steps 2..6 of 6: 1e-3 * (1 - s / 6) ** 0.9 for s = 1..5 steps already done.
    assert used == pytest.approx([1e-3 * (1 - s / 6) ** 0.9 for s in range(1, 6)], rel=1e-6)


def _check_logged_lr(run: Path, applied: list, stderr: str, last_steps: list) -> None:
    # 6 steps of lr0 1e-3, power 0.9: step k trains with 1e-3 * (1 - (k - 1) / 6) ** 0.9.
    hand = [1e-3 * (1 - (k - 1) / 6) ** 0.9 for k in range(1, 7)]  # 1e-3, 8.49e-4 ...
    assert applied == pytest.approx(hand, rel=1e-9)
    board, bar = logged_lr(run, stderr)
    assert [s for s, _ in board] == list(range(1, 7))
    assert [v for _, v in board] == pytest.approx(hand, rel=1e-6)  # float32 in the file
    assert bar == pytest.approx(hand, rel=6e-3)  # printed as 8.49e-04
    # log.csv: the lr of the epoch's last step, so the last row is not 0.
    rows = log_rows(run)
    assert [int(r["step"]) for r in rows] == last_steps
    assert [float(r["lr"]) for r in rows] == pytest.approx([hand[s - 1] for s in last_steps],
                                                           rel=1e-9)


def test_each_step_logs_the_lr_it_trained_with(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")  # 4 frames, batch 2: 2 steps an epoch
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(root, run, epochs=3, val_every=9, progress=True))
    applied = record_applied_lr(trainer.optimizer)
    trainer.fit()
    _check_logged_lr(run, applied, capsys.readouterr().err, [2, 4, 6])


def test_a_resumed_run_logs_and_applies_the_lr_of_each_step(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")
    run = tmp_path / "run"
    applied = []
    for extra in ({"max_steps_this_run": 3}, {"resume": str(run / "last.pt")}):
        # Stopped after step 1 of epoch 2, then resumed there.
        trainer = Trainer(tiny_config(root, run, epochs=3, val_every=9, progress=True, **extra))
        recorded = record_applied_lr(trainer.optimizer)
        trainer.fit()
        applied += recorded
    _check_logged_lr(run, applied, capsys.readouterr().err, [2, 4, 6])


def test_steps_runs_exactly_that_many_steps_and_resumes_exactly(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")  # 4 frames, batch 2: 2 steps an epoch
    straight = Trainer(tiny_config(root, tmp_path / "a", steps=5, val_sets=[]))
    assert straight.scheduler.total_steps == 5
    straight.fit()
    rows = log_rows(tmp_path / "a")
    # Epochs of 2, 2 and 1 steps; the lr of each one's last step k: 1e-3 * (1 - (k - 1) / 5)
    # ** 0.9.
    assert [int(r["step"]) for r in rows] == [2, 4, 5]
    expected = [1e-3 * 0.8 ** 0.9, 1e-3 * 0.4 ** 0.9, 1e-3 * 0.2 ** 0.9]
    assert [float(r["lr"]) for r in rows] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    Trainer(tiny_config(root, tmp_path / "b", steps=5, val_sets=[], max_steps_this_run=3)).fit()
    Trainer(tiny_config(root, tmp_path / "b", steps=5, val_sets=[],
                        resume=str(tmp_path / "b" / "last.pt"))).fit()
    a, b = (read_checkpoint(tmp_path / run / "last.pt") for run in ("a", "b"))
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 5
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


def _stop_and_resume(root: Path, run: Path, stop_after: int, edit_state=None, **cfg) -> None:
    Trainer(tiny_config(root, run, max_steps_this_run=stop_after, **cfg)).fit()
    if edit_state is not None:
        blob = torch.load(run / "last.pt", weights_only=True)
        edit_state(blob["train_state"])
        torch.save(blob, run / "last.pt")
    Trainer(tiny_config(root, run, resume=str(run / "last.pt"), **cfg)).fit()


def _comparable(rows: list) -> list:
    """Log rows without the wall-clock columns."""
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "epoch_s")} for r in rows]


def test_log_rows_of_a_stopped_and_resumed_run_equal_the_straight_runs(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid", frames=6)  # batch 2: 3 steps an epoch
    cfg = {"steps": 7, "val_every": 2}  # epochs of 3, 3 and 1 steps
    Trainer(tiny_config(root, tmp_path / "a", **cfg)).fit()
    _stop_and_resume(root, tmp_path / "b", 4, **cfg)  # stops after step 1 of epoch 2
    straight, split = log_rows(tmp_path / "a"), log_rows(tmp_path / "b")
    assert [int(r["step"]) for r in split] == [3, 6, 7]
    # train_loss of epoch 2 averages its 3 steps, not the 2 after the resume.
    assert _comparable(split) == _comparable(straight)
    # Its image rate counts the 6 frames of the epoch against the time spent on them.
    row = split[1]
    assert float(row["images_per_s"]) * float(row["epoch_s"]) == pytest.approx(6, rel=1e-6)


def test_a_checkpoint_without_epoch_stats_still_resumes(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid", frames=6)
    cfg = {"steps": 7, "val_sets": []}
    # Checkpoints written before the epoch's running loss was saved lack the key.
    _stop_and_resume(root, tmp_path / "b", 4, lambda st: st.pop("epoch_stats"), **cfg)
    state = read_checkpoint(tmp_path / "b" / "last.pt")["train_state"]
    assert state["global_step"] == 7
    rows = log_rows(tmp_path / "b")
    assert [int(r["step"]) for r in rows] == [3, 6, 7]
    # Only the steps after the resume are known for that epoch: 2 steps of 2 frames.
    assert float(rows[1]["images_per_s"]) * float(rows[1]["epoch_s"]) == pytest.approx(4)

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

"""A resume that changes the run's length after epochs that were not whole.

A ``--steps`` run's last epoch is short; resumed with more ``--steps`` or ``--epochs``
(or onto a data folder with more frames, hence longer epochs) the run must still train
to the step asked for, with the poly decay ending there. Tiny runs: 6 synthetic 64x48
frames, batch 2, so 3 steps an epoch.
"""
from __future__ import annotations

import pytest
import torch
from test_training import make_camvid_tree, tiny_config
from test_training_resume import flags, log_rows, record_applied_lr

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training.trainer import Trainer


def _poly(step_done: int, total: int) -> float:
    """Return the lr of the step after ``step_done`` of a ``total``-step run at lr0 1e-3."""
    return 1e-3 * (1 - step_done / total) ** 0.9


@pytest.mark.parametrize("more, end", [(["--steps", "6"], 6), (["--steps", "7"], 7),
                                       (["--epochs", "3"], 8)])
def test_more_steps_or_epochs_after_a_short_last_epoch_train_to_the_new_end(
        tmp_path, monkeypatch, capsys, more, end):
    monkeypatch.chdir(tmp_path)
    root = make_camvid_tree(tmp_path / "camvid", frames=6)
    run = tmp_path / "run"
    # Epochs of 3 and 2 steps; the run is finished.
    assert canet_main(flags(root, run, "--steps", "5", "--val-every", "9")) == 0
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt"), *more]) == 0
    out = capsys.readouterr().out
    # --steps N ends at step N; --epochs 3 adds one whole epoch (3 steps) to the 5 done.
    assert f"resumed from {run / 'last.pt'} in epoch 3/3 after step 0/{end - 5}" in out
    rows = log_rows(run)
    assert [int(r["step"]) for r in rows] == [3, 5, end]
    # The decay re-aimed at the new end reaches it: the last step trains at 1e-3 / end ** 0.9.
    assert float(rows[-1]["lr"]) == pytest.approx(_poly(end - 1, end), rel=1e-6)
    state = read_checkpoint(run / "last.pt")["train_state"]
    assert state["global_step"] == end and state["scheduler"]["total_steps"] == end


def _comparable(rows: list) -> list:
    """Log rows without the wall-clock columns."""
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "epoch_s")} for r in rows]


def test_an_extended_run_stopped_anywhere_equals_the_same_run_straight(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid", frames=6)
    applied = {}
    plans = {"a": [{}], "b": [{"max_steps_this_run": 1}, {"max_steps_this_run": 2}, {}]}
    for name, stops in plans.items():
        run, applied[name] = tmp_path / name, []
        Trainer(tiny_config(root, run, steps=5, val_every=2)).fit()
        # b: stopped after step 6 (inside epoch 3), then after 8 (as epoch 4 begins).
        for stop in stops:
            trainer = Trainer(tiny_config(root, run, steps=9, val_every=2,
                                          resume=str(run / "last.pt"), **stop))
            recorded = record_applied_lr(trainer.optimizer)
            trainer.fit()
            applied[name] += recorded
    # Steps 6..9 of the decay re-aimed at 9: epoch 3 whole (6-8), epoch 4 the last step.
    assert applied["a"] == pytest.approx([_poly(k - 1, 9) for k in range(6, 10)], rel=1e-9)
    assert applied["b"] == applied["a"]
    straight, split = log_rows(tmp_path / "a"), log_rows(tmp_path / "b")
    assert [int(r["step"]) for r in straight] == [3, 5, 8, 9]
    assert _comparable(split) == _comparable(straight)
    a, b = (read_checkpoint(tmp_path / name / "last.pt") for name in ("a", "b"))
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 9
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


def test_a_resume_onto_more_frames_still_trains_the_runs_steps(tmp_path):
    small = make_camvid_tree(tmp_path / "small", frames=6)  # 3 steps an epoch
    grown = make_camvid_tree(tmp_path / "grown", frames=12)  # 6 steps an epoch
    run = tmp_path / "run"
    Trainer(tiny_config(root=small, out=run, steps=12, val_sets=[],
                        max_steps_this_run=3)).fit()  # stopped as epoch 2 begins
    Trainer(tiny_config(root=grown, out=run, steps=12, val_sets=[],
                        resume=str(run / "last.pt"))).fit()
    rows = log_rows(run)
    # 3 steps done, then epochs of 6 and 3: step 12, where the decay ends.
    assert [int(r["step"]) for r in rows] == [3, 9, 12]
    assert float(rows[-1]["lr"]) == pytest.approx(_poly(11, 12), rel=1e-6)
    assert read_checkpoint(run / "last.pt")["train_state"]["global_step"] == 12

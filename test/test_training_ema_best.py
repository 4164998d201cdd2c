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


"""Inside the trainer: the EMA after a real optimiser step, and best.pt across a resume.

The EMA is checked against the update computed here by hand from the weights before and
after one step; best.pt against validation scores this test chooses (validation itself
is tested in test_training.py and test_evaluate.py).
"""
from __future__ import annotations

import pytest
import torch
from test_training import make_camvid_tree, tiny_config

from canet_ros.checkpoint import read_checkpoint
from canet_ros.training import validate as validate_module
from canet_ros.training.trainer import Trainer


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_camvid_tree(tmp_path_factory.mktemp("camvid"))


def test_ema_averages_the_weights_after_the_optimizer_step(root, tmp_path):
    trainer = Trainer(tiny_config(root, tmp_path / "run", epochs=1, ema_decay=0.9,
                                  max_steps_this_run=1))
    before = {k: v.detach().clone() for k, v in trainer.bare_model.named_parameters()}
    assert trainer.ema.updates == 0
    trainer.fit()
    assert trainer.global_step == 1 and trainer.ema.updates == 1
    after = dict(trainer.bare_model.named_parameters())
    average = trainer.ema.module.state_dict()
    d = min(0.9, (1 + 0) / (10 + 0))  # the warm-up decay of the first update: 0.1
    moved = 0
    for name, w0 in before.items():
        w1 = after[name].detach()
        moved += int(not torch.equal(w0, w1))
        torch.testing.assert_close(average[name], d * w0 + (1 - d) * w1, rtol=0, atol=1e-6,
                                   msg=lambda m, n=name: f"{n}: {m}")
    assert moved > 0.9 * len(before)  # Adam's first step moves every trained weight


def scripted_validation(scores):
    """Stands in for run_validation: every validation set scores the next given mIoU."""
    it = iter(scores)

    def validate(model, data, device, channels_last, batch_size):
        score = next(it)
        return {spec["name"]: {"miou": score, "global_acc": score} for spec in data.val_specs}
    return validate


def test_best_checkpoint_survives_a_resume_with_a_worse_validation(root, tmp_path, monkeypatch):
    # 4 frames, batch 2: one epoch is 2 steps, so each invocation trains and validates once.
    monkeypatch.setattr(validate_module, "run_validation", scripted_validation([0.6, 0.4, 0.7]))
    run = tmp_path / "run"
    Trainer(tiny_config(root, run, epochs=3, max_steps_this_run=2)).fit()
    first = read_checkpoint(run / "best.pt")
    assert (first["metrics"]["epoch"], first["metrics"]["score"]) == (1, 0.6)

    resumed = Trainer(tiny_config(root, run, epochs=3, max_steps_this_run=2,
                                  resume=str(run / "last.pt")))
    best = resumed.fit()
    assert resumed.epoch == 2 and resumed.best_score == 0.6
    assert (best["epoch"], best["score"]) == (1, 0.6)
    kept = read_checkpoint(run / "best.pt")
    assert (kept["metrics"]["epoch"], kept["metrics"]["score"]) == (1, 0.6)
    for key, value in first["state_dict"].items():
        assert torch.equal(kept["state_dict"][key], value), key
    assert read_checkpoint(run / "last.pt")["train_state"]["best_score"] == 0.6

    # A better score after the next resume does replace it.
    Trainer(tiny_config(root, run, epochs=3, resume=str(run / "last.pt"))).fit()
    last = read_checkpoint(run / "best.pt")
    assert (last["metrics"]["epoch"], last["metrics"]["score"]) == (3, 0.7)
    assert any(not torch.equal(last["state_dict"][k], v) for k, v in first["state_dict"].items())

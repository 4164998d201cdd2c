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

"""Training options beyond the defaults: SGD, class_weighting none/enet, AMP.

Each is checked against what the option means, worked out independently: the SGD
update rule, the cross-entropy of the logged steps recomputed by hand, and AMP being a
no-op on the CPU (on CUDA: fp16 forward, GradScaler state surviving a resume).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training import make_camvid_tree, tiny_config
from test_training_resume import log_rows

from canet_ros.checkpoint import read_checkpoint
from canet_ros.training.trainer import Trainer


def test_sgd_first_step_is_lr_times_momentum_buffer(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    cfg = tiny_config(root, tmp_path / "run", optimizer="sgd", lr=0.01, momentum=0.8,
                      weight_decay=1e-3, max_steps_this_run=1, device="cpu")
    trainer = Trainer(cfg)
    names = [n for n, _ in trainer.bare_model.named_parameters()]
    before = {n: p.detach().clone() for n, p in trainer.bare_model.named_parameters()}
    trainer.fit()
    ck = read_checkpoint(tmp_path / "run" / "last.pt")
    opt = ck["train_state"]["optimizer"]
    group = opt["param_groups"][0]
    assert (group["momentum"], group["weight_decay"], group["initial_lr"]) == (0.8, 1e-3, 0.01)
    assert len(opt["state"]) > 0.9 * len(names)  # nearly every parameter got a gradient
    for index, state in opt["state"].items():
        name = names[index]
        # SGD with momentum, first step: buffer = grad + wd * w, and w -= lr * buffer.
        buf = state["momentum_buffer"]
        expected = before[name] - 0.01 * buf
        assert torch.allclose(ck["state_dict"][name], expected, rtol=1e-6, atol=1e-8), name
    assert any(state["momentum_buffer"].abs().sum() > 0 for state in opt["state"].values())


class _LabelRecorder:
    """Wraps the training transform and keeps every training target, in batch order."""

    def __init__(self, inner):
        self.inner, self.labels = inner, []

    def __call__(self, image, label):
        x, y = self.inner(image, label)
        self.labels.append(y)
        return x, y


def _hand_enet_weights(root, num_classes: int = 11, ignore: int = 11, c: float = 1.02):
    counts = np.zeros(num_classes)
    for path in sorted((root / "trainannot").iterdir()):
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        for k in range(num_classes):
            counts[k] += (label == k).sum()
    assert (label == ignore).any()  # void pixels exist and are left out of the shares
    share = counts / counts.sum()
    return torch.tensor([1.0 / math.log(c + p) for p in share], dtype=torch.float32)


@pytest.mark.parametrize("weighting", ["none", "enet"])
def test_logged_loss_is_the_configured_cross_entropy(tmp_path, weighting):
    root = make_camvid_tree(tmp_path / "camvid")
    trainer = Trainer(tiny_config(root, tmp_path / "run", epochs=1, class_weighting=weighting,
                                  device="cpu"))
    recorder = _LabelRecorder(trainer.data.train_transform)
    trainer.data.train.transform = recorder
    logits = []
    trainer.bare_model.register_forward_hook(
        lambda module, args, out: logits.append(out.detach().clone()) if module.training
        else None)
    trainer.fit()
    assert len(logits) == 2 and len(recorder.labels) == 4  # 2 steps of batch 2
    weight = None if weighting == "none" else _hand_enet_weights(root)
    losses = [F.cross_entropy(logits[k].float(), torch.stack(recorder.labels[2 * k:2 * k + 2]),
                              weight=weight, ignore_index=11).item() for k in range(2)]
    other = [F.cross_entropy(logits[k].float(), torch.stack(recorder.labels[2 * k:2 * k + 2]),
                             weight=None if weight is not None else _hand_enet_weights(root),
                             ignore_index=11).item() for k in range(2)]
    logged = float(log_rows(tmp_path / "run")[0]["train_loss"])
    assert logged == pytest.approx(sum(losses) / 2, rel=1e-5)
    assert abs(sum(other) / 2 - logged) > 1e-3 * logged  # the two weightings differ here
    saved = read_checkpoint(tmp_path / "run" / "last.pt")["train_args"]
    assert saved["class_weighting"] == weighting
    assert (saved["class_weights"] is None) == (weighting == "none")


def test_amp_is_a_no_op_on_the_cpu(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    weights = {}
    for amp in (True, False):
        run = tmp_path / f"amp_{amp}"
        trainer = Trainer(tiny_config(root, run, amp=amp, device="cpu", max_steps_this_run=2))
        assert not trainer.scaler.is_enabled()  # no GradScaler without CUDA
        trainer.fit()
        ck = read_checkpoint(run / "last.pt")
        assert ck["train_args"]["amp"] is amp
        assert ck["train_state"]["scaler"] == {}  # a disabled scaler has no state
        weights[amp] = ck["state_dict"]
    for key, value in weights[True].items():
        assert torch.equal(value, weights[False][key]), key


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA device: AMP and its GradScaler run only there")
def test_amp_on_cuda_fp16_forward_and_scaler_state_survives_resume(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    run = tmp_path / "run"
    first = Trainer(tiny_config(root, run, amp=True, device="cuda", max_steps_this_run=3))
    assert first.scaler.is_enabled()
    fresh = dict(first.scaler.state_dict())
    dtypes = []
    first.bare_model.register_forward_hook(
        lambda module, args, out: dtypes.append(out.dtype) if module.training else None)
    first.fit()
    assert dtypes == [torch.float16] * 3  # autocast ran the training forwards in fp16
    saved = read_checkpoint(run / "last.pt")["train_state"]["scaler"]
    # Three steps either grew the growth tracker or (after an overflow) cut the scale.
    assert saved and saved != fresh
    second = Trainer(tiny_config(root, run, amp=True, device="cuda",
                                 resume=str(run / "last.pt")))
    second.resume(str(run / "last.pt"))
    assert second.scaler.state_dict() == saved
    second.fit()
    assert read_checkpoint(run / "last.pt")["train_state"]["global_step"] == 4

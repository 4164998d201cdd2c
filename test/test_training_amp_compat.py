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

"""The trainer's gradient scaler on torch before 2.3, which lacks torch.amp.GradScaler.

setup.py admits torch 2.1 (JetPack 6's wheels are 2.1-2.4); there `canet train` stopped at
once with "module 'torch.amp' has no attribute 'GradScaler'", even on the CPU.
"""
from __future__ import annotations

import torch

from canet_ros.training.amp import grad_scaler


def test_without_torch_amp_gradscaler_the_cuda_one_is_used(monkeypatch):
    monkeypatch.delattr(torch.amp, "GradScaler")  # as torch 2.1 and 2.2 have it
    scaler = grad_scaler(enabled=False)
    assert isinstance(scaler, torch.cuda.amp.GradScaler)
    assert not scaler.is_enabled()
    # Disabled, it passes the loss through and steps the optimiser as plain training does.
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.5)
    scaler.scale((w * w).sum()).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.equal(w.detach(), torch.zeros(2))  # 1 - 0.5 * 2


def test_canet_train_runs_on_a_torch_without_torch_amp_gradscaler(tmp_path, monkeypatch):
    from test_training import make_camvid_tree

    from canet_ros.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delattr(torch.amp, "GradScaler")
    root = make_camvid_tree(tmp_path / "camvid")
    run = tmp_path / "run"
    assert main(["train", "--data-root", str(root), "--out-dir", str(run), "--epochs", "1",
                 "--batch-size", "2", "--crop-size", "48", "32", "--workers", "0",
                 "--threads", "1", "--device", "cpu", "--no-progress"]) == 0
    assert (run / "last.pt").is_file()

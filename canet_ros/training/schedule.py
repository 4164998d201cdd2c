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

"""The optimiser and the poly learning-rate policy: base_lr * (1 - step / total_steps) ** power.

The paper states it per epoch; stepping it per iteration is the same curve sampled
finer, which avoids lr plateaus when there are only a few dozen iterations per epoch.
"""
from __future__ import annotations

from typing import Any, List

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def poly_factor(step: int, total_steps: int, power: float = 0.9) -> float:
    """Multiplier of the base learning rate after ``step`` of ``total_steps`` steps."""
    if total_steps <= 0:
        return 1.0
    return max(0.0, 1.0 - min(step, total_steps) / total_steps) ** power


def build_optimizer(model: nn.Module, cfg: Any) -> Optimizer:
    """Build the run's optimiser (a TrainConfig's) over the parameters that train."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class PolyLR(LRScheduler):
    """Per-iteration poly decay; its state_dict holds only numbers (weights_only-safe)."""

    def __init__(self, optimizer: Optimizer, total_steps: int, power: float = 0.9,
                 last_epoch: int = -1):
        self.total_steps = int(total_steps)
        self.power = float(power)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        f = poly_factor(self.last_epoch, self.total_steps, self.power)
        return [base * f for base in self.base_lrs]

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

"""Exponential moving average of a model's weights.

With a few thousand noisy Adam steps on a small dataset, the average of the last few
hundred weight vectors generalises better than the last one. Batch-norm running
statistics are averaged too, so the averaged model is used as it is, with no re-estimate.
"""
from __future__ import annotations

import copy
from typing import Dict

import torch
from torch import nn


class ModelEMA:
    """ema = d * ema + (1 - d) * weights after every step, d warming up from 0.

    The warm-up d_t = min(decay, (1 + t) / (10 + t)) keeps the random initial weights
    from dominating the average early in a run.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1.0 + updates) / (10.0 + updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay_at(self.updates)
        self.updates += 1
        current = model.state_dict()
        for name, avg in self.module.state_dict().items():
            value = current[name].detach()
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(value.to(avg.dtype), alpha=1.0 - d)
            else:  # counters such as num_batches_tracked
                avg.copy_(value)

    def state_dict(self) -> Dict[str, object]:
        return {"updates": self.updates, "decay": self.decay,
                "weights": self.module.state_dict()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.updates = int(state["updates"])  # type: ignore[arg-type]
        self.module.load_state_dict(state["weights"])  # type: ignore[arg-type]

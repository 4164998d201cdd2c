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

"""Parameter and multiply-accumulate counts, measured on the real module."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, height: int, width: int, channels: int = 3) -> Tuple[int, tuple]:
    """Count the MACs of one forward pass on a 1xCxHxW input; also return the output shape.

    torch's FLOP counter counts 2 FLOPs per multiply-accumulate of convs, transposed
    convs and matmuls; halved here, it gives MACs, which is what the paper's "FLOPs" are
    (its Table 2: CANet1 18.5 G at 1024x512, where we count 19.5 GMACs, 39 GFLOPs).
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, channels, height, width)
        counter = FlopCounterMode(display=False)
        with counter:
            out = model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2, tuple(out.shape)

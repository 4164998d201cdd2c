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

"""Refuse, before training, a crop and batch size that batch norm cannot train on.

In training mode batch norm needs more than one value per channel. The backbone's deepest
feature map is the crop divided by its output stride, rounded up, so with one frame per
batch a crop of at most that stride on both sides leaves a 1x1 map there, and torch fails on
the first step with "Expected more than 1 value per channel when training".
"""
from __future__ import annotations

import math
import os
from typing import List, Sequence, Tuple

import torch
from torch import nn

from ..models import build_canet
from .transfer import freeze_layers

_PROBE = 256  # any size: the stride is this over the size of the smallest map


def _smallest_maps(backbone: str, crops: Sequence[Sequence[int]], train_layers: str
                   ) -> Tuple[int, List[int]]:
    """Return (output stride, values per channel at one frame for each crop (W, H)).

    The model is built on the meta device: shapes only, no weights, no arithmetic. Only
    the batch norms that train count: those of layers ``train_layers`` freezes stay in
    eval mode, which needs no second value.
    """
    with torch.device("meta"):
        model = build_canet(backbone, 2, pretrained_backbone=None)
    freeze_layers(model, train_layers)
    model.train()
    shapes: List[Tuple[bool, int, int]] = []  # (trains, height, width) at each batch norm
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.register_forward_pre_hook(
                lambda m, inp: shapes.append((m.training, *inp[0].shape[2:])))

    def run(w: int, h: int) -> List[Tuple[bool, int, int]]:
        shapes.clear()
        with torch.no_grad():
            model(torch.empty(2, 3, h, w, device="meta"))
        return list(shapes)

    probe = run(_PROBE, _PROBE)
    stride = _PROBE // min((h for trains, h, _ in probe if trains),
                           default=min(h for _, h, _ in probe))
    # No training batch norm at all (only the classifier trains): any crop will do.
    return stride, [min((h * w for trains, h, w in run(int(cw), int(ch)) if trains),
                        default=2) for cw, ch in crops]


def check_crop(cfg: object, backbone: str) -> None:
    """Raise ValueError where a training crop at ``cfg.batch_size`` fails in batch norm."""
    late = getattr(cfg, "late_crop_size", None)
    late_epochs = int(getattr(cfg, "late_crop_epochs", 0)) if late else 0
    crops = [] if late_epochs >= int(getattr(cfg, "epochs", 1)) else \
        [("--crop-size", c) for c in (getattr(cfg, "crop_size", None),) if c]
    crops += [("--late-crop-size", late)] if late_epochs > 0 else []  # only the crops used
    batch = int(getattr(cfg, "batch_size", 1))
    # DDP on CUDA converts to SyncBatchNorm, which counts every process's frames.
    synced = int(os.environ.get("WORLD_SIZE", "1")) > 1 and getattr(cfg, "device", "auto") \
        != "cpu" and torch.cuda.is_available()
    if batch > 1 or synced or not crops:  # batch norm sees at least two frames
        return
    stride, values = _smallest_maps(backbone, [c for _, c in crops],
                                    str(getattr(cfg, "train_layers", "all")))
    for (flag, (w, h)), n in zip(crops, values, strict=True):
        if n * batch <= 1:
            side = stride + 1
            raise ValueError(
                f"{flag} {w} {h} with --batch-size {batch}: the deepest batch norm that "
                f"trains in the {backbone} network (output stride {stride}) sees the crop as "
                f"{math.ceil(w / stride)}x{math.ceil(h / stride)}, one value per channel; "
                f"use a crop of "
                f"at least {side} px on one side (e.g. {flag} {max(w, side)} {h}) or "
                f"--batch-size 2 or more")

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

"""CutMix for segmentation: paste a box of one training frame, with its labels, into another.

With a few hundred frames of three drives, the network can learn which objects go with
which surroundings (this street's buildings behind this street's trees) instead of what
the objects look like; a new drive breaks those pairings. A pasted box shows every object
next to foreign context. The box keeps its position (sky stays at the top, road at the
bottom), so the scene-layout prior the network needs is kept. Labels are pasted with the
pixels, so no loss mixing is needed. Measured for the default model's fine-tuning stage
on a held-out CamVid drive it did not help (MODEL_CARD.md), so it stays off by default.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch

# Fraction of the frame a box covers, drawn uniformly from this range.
AREA_RANGE = (0.1, 0.5)


def step_generator(seed: int, step: int) -> torch.Generator:
    """Return a generator that depends only on (seed, step): resumed runs draw the same boxes."""
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + int(step)) % (2 ** 63))
    return g


def cutmix_boxes(batch: int, height: int, width: int, prob: float,
                 generator: torch.Generator) -> List[Tuple[int, int, int, int, int, int]]:
    """``[(i, j, top, left, h, w), ...]``: paste frame j's box into frame i."""
    if batch < 2 or prob <= 0:
        return []
    boxes = []
    use = torch.rand(batch, generator=generator) < prob
    partner_shift = torch.randint(1, batch, (batch,), generator=generator)
    area = torch.empty(batch).uniform_(*AREA_RANGE, generator=generator)
    aspect = torch.empty(batch).uniform_(-math.log(2), math.log(2), generator=generator).exp()
    centre = torch.rand(batch, 2, generator=generator)
    for i in range(batch):
        if not use[i]:
            continue
        a = float(area[i]) * height * width
        h = max(1, min(height, round(math.sqrt(a / float(aspect[i])))))
        w = max(1, min(width, round(math.sqrt(a * float(aspect[i])))))
        top = min(max(0, round(float(centre[i, 0]) * height - h / 2)), height - h)
        left = min(max(0, round(float(centre[i, 1]) * width - w / 2)), width - w)
        boxes.append((i, (i + int(partner_shift[i])) % batch, top, left, h, w))
    return boxes


def cutmix(images: torch.Tensor, labels: torch.Tensor, prob: float,
           generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return mixed copies of an (N, C, H, W) batch and its (N, H, W) labels.

    Each frame, with probability ``prob``, receives one box from another frame of the
    batch, taken from the unmixed batch so boxes never carry earlier pastes.
    """
    if images.shape[0] != labels.shape[0] or images.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and labels {tuple(labels.shape)} "
                         "do not match")
    boxes = cutmix_boxes(images.shape[0], images.shape[-2], images.shape[-1], prob, generator)
    if not boxes:
        return images, labels
    out_images, out_labels = images.clone(), labels.clone()
    for i, j, top, left, h, w in boxes:
        out_images[i, :, top:top + h, left:left + w] = images[j, :, top:top + h, left:left + w]
        out_labels[i, top:top + h, left:left + w] = labels[j, top:top + h, left:left + w]
    return out_images, out_labels

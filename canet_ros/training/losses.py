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

"""Class weights for the weighted cross-entropy (paper section 4.1).

Formula (ENet, Paszke et al. 2016):  w_k = 1 / ln(c + p_k),  c = 1.02,
where p_k = n_k / sum_j n_j is class k's share of the labelled (non-ignored) training
pixels. Rare classes get large weights, but since ln(1.02) ~ 0.0198 a class can weigh
at most ~50, which keeps the loss bounded. A class absent from the training labels
(p_k = 0) gets the maximum weight 1 / ln(c); it never appears in a target so it is inert.
"""
from __future__ import annotations

import math
from typing import Iterable, List, Optional

import numpy as np
import torch
from torch import nn


def class_pixel_counts(labels: Iterable[np.ndarray], num_classes: int,
                       ignore_index: Optional[int]) -> np.ndarray:
    """Pixels per class over the label arrays; ignored and out-of-range ids are skipped."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for lab in labels:
        flat = np.asarray(lab).reshape(-1).astype(np.int64)
        keep = (flat >= 0) & (flat < num_classes)
        if ignore_index is not None:
            keep &= flat != ignore_index
        counts += np.bincount(flat[keep], minlength=num_classes)
    return counts


def enet_class_weights(counts: np.ndarray, c: float = 1.02,
                       source: str = "the training split") -> List[float]:
    """w_k = 1 / ln(c + p_k) with p_k the class's pixel share.

    ``source`` names the labels counted (dataset and split) in the error raised when
    none of their pixels is labelled.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError(f"{source}: no labelled pixels to compute class weights from (every "
                         f"label pixel is the ignore id or outside the classes)")
    return [1.0 / math.log(c + n / total) for n in counts]


def weighted_cross_entropy(weights: Optional[List[float]], ignore_index: int,
                           device: torch.device) -> nn.Module:
    w = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
    return nn.CrossEntropyLoss(weight=w, ignore_index=int(ignore_index))

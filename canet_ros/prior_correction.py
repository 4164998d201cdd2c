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

"""Undo part of the class-weighted loss's bias, in the classifier's bias (no runtime cost).

A network trained with cross-entropy weighted by ``w_c`` learns, at the optimum, logits
``log p(c|x) + log w_c`` (plus a constant): every rare class is pushed up by the log of its
weight. That makes thin classes visible, but also over-predicts them on frames unlike the
training set. Subtracting ``strength * log w_c`` from the classifier bias moves the decision
between the weighted (strength 0) and the calibrated (strength 1) posterior. The strength
applied is stored in the checkpoint's metadata as ``prior_correction``, so applying it twice
is impossible and ``strength`` always means the total, not a step.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence

import torch
from torch import nn

from .errors import CanetError

MAX_STRENGTH = 2.0
META_KEY = "prior_correction"


class PriorCorrectionError(CanetError, ValueError):
    """The checkpoint has no class weights to correct for, or the strength is invalid."""


def check_strength(strength: float) -> float:
    value = float(strength)
    if not 0.0 <= value <= MAX_STRENGTH:  # also rejects nan
        raise PriorCorrectionError(f"prior correction strength {strength!r} must be between 0 "
                                   f"and {MAX_STRENGTH:g}")
    return value


def current_strength(meta: Mapping[str, Any]) -> float:
    """Return the strength already in a checkpoint's weights (0 for one never corrected)."""
    return float(meta.get(META_KEY) or 0.0)


def training_class_weights(meta: Mapping[str, Any], source: str = "checkpoint"
                           ) -> List[float]:
    weights = (meta.get("train_args") or {}).get("class_weights")
    if not weights:
        raise PriorCorrectionError(
            f"{source}: trained without class weights (no train_args.class_weights), so there "
            f"is no class prior to correct; use it as it is")
    if len(weights) != int(meta["num_classes"]) or not all(
            math.isfinite(float(w)) and float(w) > 0 for w in weights):
        raise PriorCorrectionError(f"{source}: train_args.class_weights must hold "
                                   f"{meta['num_classes']} positive numbers, not {weights!r}")
    return [float(w) for w in weights]


def logit_shift(class_weights: Sequence[float], strength: float) -> torch.Tensor:
    """``strength * log w``, centred: argmax only sees differences between classes."""
    log_w = torch.tensor(class_weights, dtype=torch.float64).log()
    return (strength * (log_w - log_w.mean())).float()


def set_prior_correction(model: nn.Module, meta: Dict[str, Any], strength: float,
                         source: str = "checkpoint") -> float:
    """Give ``model`` (and ``meta``) a total correction of ``strength``; returns the change.

    ``model`` must end in a 1x1 convolution ``classifier`` with a bias, as CANet does.
    """
    strength = check_strength(strength)
    delta = strength - current_strength(meta)
    if delta == 0.0:
        return 0.0
    weights = training_class_weights(meta, source)
    bias = getattr(getattr(model, "classifier", None), "bias", None)
    if bias is None or bias.numel() != len(weights):
        raise PriorCorrectionError(f"{source}: the model has no classifier bias of "
                                   f"{len(weights)} classes to adjust")
    with torch.no_grad():
        bias.sub_(logit_shift(weights, delta).to(bias.device, bias.dtype))
    if strength:
        meta[META_KEY] = strength
    else:
        meta.pop(META_KEY, None)
    return delta

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

"""Validation during training: each configured set scored with the evaluation code."""
from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import torch
from torch import nn

from ..evaluation import eval_loader, evaluate_loader, summarize
from .config import TrainConfig, holdout_set_name


def run_validation(model: nn.Module, data: Any, device: torch.device, channels_last: bool,
                   batch_size: int) -> Dict[str, Dict[str, Any]]:
    """{set name: {miou, global_acc, per_class, pixels, frames}} for every validation set.

    Raises ValueError, before scoring any, where two sets share a name: one's results would
    silently replace the other's. Configs are refused earlier (``valset_names.val_set_names``);
    this covers specs built past that check.
    """
    names = [spec["name"] for spec in data.val_specs]
    twice = sorted({str(n) for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"validation sets share the name(s) {', '.join(twice)}: one's results "
                         f"would replace the other's; give each set its own name")
    out: Dict[str, Dict[str, Any]] = {}
    cs = data.class_set
    for spec, ds in zip(data.val_specs, data.val, strict=True):
        # Workers would copy the frame cache per set; in-process loading is cheap enough.
        loader = eval_loader(ds, batch_size)
        cm = evaluate_loader(model, loader, cs.num_classes, cs.ignore_index, device,
                             channels_last=channels_last)
        out[spec["name"]] = summarize(cm, cs.names, len(ds))
    return out


def selection_score(results: Dict[str, Dict[str, Any]], cfg: TrainConfig) -> Tuple[float, str]:
    """(score, how it was chosen): ``select_on``, else the held-out drive, else the mean."""
    name = cfg.select_on or (holdout_set_name(cfg.holdout) if cfg.holdout else None)
    if name:
        return float(results[name]["miou"]), f"mIoU of {name}"
    scores = [float(r["miou"]) for r in results.values()]
    return sum(scores) / len(scores), "mean mIoU over validation sets"


def better(score: float, best: float) -> bool:
    """Whether ``score`` beats ``best``: a nan score never does, and anything beats a nan best.

    NaN weights predict one class everywhere, which can score above a finite model on a
    validation set of mostly that class; they are stopped before validating
    (``divergence.check_weights``), and a nan score is never selected.
    """
    return not math.isnan(score) and (score > best or math.isnan(best))


def logged_validation(model: nn.Module, data: Any, device: torch.device, cfg: TrainConfig,
                      suffix: str, row: Dict[str, Any], log: Any, epoch: int
                      ) -> Dict[str, Dict[str, Any]]:
    """Return ``run_validation``'s results, written into the log ``row`` and TensorBoard."""
    results = run_validation(model, data, device, cfg.channels_last, cfg.eval_batch_size)
    for name, res in results.items():
        for key in ("miou", "global_acc"):
            row[f"{name}{suffix}_{key}"] = res[key]
            log.scalar(f"val/{name}{suffix}_{key}", res[key], epoch)
    return results

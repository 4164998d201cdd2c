"""Validation during training: each configured set scored with the evaluation code."""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..evaluation import evaluate_loader, summarize


def run_validation(model: nn.Module, data: Any, device: torch.device, channels_last: bool,
                   batch_size: int) -> Dict[str, Dict[str, Any]]:
    """{set name: {miou, global_acc, per_class, pixels, frames}} for every validation set."""
    out: Dict[str, Dict[str, Any]] = {}
    cs = data.class_set
    for spec, ds in zip(data.val_specs, data.val, strict=True):
        # Workers would copy the frame cache per set; in-process loading is cheap enough.
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
        cm = evaluate_loader(model, loader, cs.num_classes, cs.ignore_index, device,
                             channels_last=channels_last)
        out[spec["name"]] = summarize(cm, cs.names, len(ds))
    return out

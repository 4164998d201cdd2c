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

"""Fine-tuning onto another class set, and which parts of the network train.

A new class set keeps every layer of the starting checkpoint except the classifier's
rows, which are matched by class name: a class the old model knew starts from its old
row, a class that merges several old ones (``vehicle: [Car, Bicyclist]``) from their
combination, and a new class from a fresh initialisation. The same mapping turns the old
data set's labels into the new ids, so original frames can be mixed in ("replay").
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import yaml
from torch import nn

from ..data.problems import brief, brief_items
from ..errors import DatasetError
from .config import TRAIN_LAYERS

# What stays frozen for each choice; module names of canet_ros.models.canet.CANet.
_FROZEN = {
    "all": (),
    "decoder": ("context",),
    "head": ("context", "spatial"),
    "classifier": ("context", "spatial", "context_fusion", "fca"),
}


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def load_class_map(path: Union[str, Path]) -> Dict[str, List[str]]:
    """Return a mapping file: ``new class: old class`` or ``new class: [old, old, ...]``.

    Names not mentioned are matched by name (case and ``_``/space insensitive).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:  # a ValueError too, so ahead of that clause
        raise DatasetError(f"{path}: class map is not UTF-8 text (byte "
                           f"0x{exc.object[exc.start]:02x} at position {exc.start}); save it "
                           f"as UTF-8") from exc
    except (OSError, yaml.YAMLError) as exc:
        why = " ".join(str(exc).split())
        raise DatasetError(f"{path}: cannot read class map ({why})") from exc
    except RecursionError as exc:  # PyYAML builds nested lists recursively
        raise DatasetError(f"{path}: cannot read class map (nested too deeply)") from exc
    except ValueError as exc:  # an integer past Python's 4300-digit limit, a 13th month
        why = " ".join(str(exc).split())[:200]
        raise DatasetError(f"{path}: cannot read class map ({why})") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: class map must be a mapping 'new class: old class(es)'")
    out: Dict[str, List[str]] = {}
    for new, old in raw.items():
        olds = [old] if isinstance(old, str) else old
        if not isinstance(olds, list) or not all(isinstance(o, str) for o in olds):
            raise DatasetError(f"{path}: class map entry {brief(new)} must name one old class "
                               f"or a list of them, not {brief(old)}")
        out[str(new)] = list(olds)
    return out


@dataclass
class ClassTransfer:
    """For each new class id, the old class ids it starts from (empty: fresh)."""

    sources: List[List[int]]
    old_names: List[str]
    new_names: List[str]
    notes: List[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        for new, src in zip(self.new_names, self.sources, strict=True):
            if not src:
                parts.append(f"{new} (new)")
            elif len(src) == 1 and _norm(self.old_names[src[0]]) == _norm(new):
                parts.append(new)
            else:
                parts.append(f"{new} <- {'+'.join(self.old_names[i] for i in src)}")
        return ", ".join(parts)


def plan_transfer(old_names: Sequence[str], new_names: Sequence[str],
                  class_map: Optional[Mapping[str, Sequence[str]]] = None) -> ClassTransfer:
    """Match new classes to old ones by the map, else by name."""
    old_index = {_norm(n): i for i, n in enumerate(old_names)}
    mapped = {_norm(k): list(v) for k, v in (class_map or {}).items()}
    unknown_new = [k for k in (class_map or {}) if _norm(k) not in {_norm(n) for n in new_names}]
    if unknown_new:
        raise DatasetError(f"class map names [{brief_items(unknown_new)}] that are not in the "
                           f"new class list [{brief_items(list(new_names), 50)}]")
    sources: List[List[int]] = []
    for new in new_names:
        olds = mapped.get(_norm(new))
        if olds is None:
            sources.append([old_index[_norm(new)]] if _norm(new) in old_index else [])
            continue
        missing = [o for o in olds if _norm(o) not in old_index]
        if missing:
            raise DatasetError(f"class map: {brief(new)} <- [{brief_items(missing)}]: not classes "
                               f"of the starting model [{brief_items(list(old_names), 50)}]")
        sources.append([old_index[_norm(o)] for o in olds])
    return ClassTransfer(sources, list(old_names), list(new_names))


def transfer_classifier(old: nn.Conv2d, new: nn.Conv2d, plan: ClassTransfer) -> None:
    """Fill ``new``'s rows from ``old``'s: copied, merged or left as initialised.

    A merged class takes the mean of its sources' weights and the log-sum-exp of their
    biases, so with similar features its score is about the sum of theirs (softmax).
    """
    with torch.no_grad():
        for row, src in enumerate(plan.sources):
            if not src:
                continue
            idx = torch.tensor(src, dtype=torch.long)
            new.weight[row] = old.weight[idx].float().mean(0).to(new.weight.dtype)
            if new.bias is not None and old.bias is not None:
                new.bias[row] = torch.logsumexp(old.bias[idx].float(), 0).to(new.bias.dtype)


def label_lut(plan: ClassTransfer, old_ignore: int, new_ignore: int) -> np.ndarray:
    """256-entry table turning the old data set's ids into the new ones (replay frames).

    Old classes that no new class draws from become ``new_ignore``: the replayed frames
    then teach nothing about them, rather than calling them something they are not.
    """
    lut = np.full(256, new_ignore, dtype=np.uint8)
    for new_id, src in enumerate(plan.sources):
        for old_id in src:
            lut[old_id] = new_id
    lut[old_ignore] = new_ignore
    return lut


def _keep_eval(module: nn.Module) -> None:
    """Keep ``module`` in eval mode (frozen BatchNorm statistics).

    It stays so whatever ``train()`` its parents call.
    """
    def train(self: nn.Module, mode: bool = True) -> nn.Module:
        return nn.Module.train(self, False)
    module.train = types.MethodType(train, module)  # type: ignore[method-assign]
    module.train(False)


def freeze_layers(model: nn.Module, train_layers: str) -> List[str]:
    """Freeze what ``train_layers`` leaves out; returns the frozen module names."""
    if train_layers not in _FROZEN:
        raise ValueError(f"train_layers must be one of {', '.join(TRAIN_LAYERS)}, "
                         f"not {brief(train_layers)}")
    frozen = []
    for name in _FROZEN[train_layers]:
        module = getattr(model, name)
        for p in module.parameters():
            p.requires_grad_(False)
        _keep_eval(module)
        frozen.append(name)
    return frozen


def trainable_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def steps_to_epochs(steps: int, steps_per_epoch: int) -> int:
    """Whole epochs covering at least ``steps`` optimiser steps."""
    return max(1, math.ceil(steps / max(steps_per_epoch, 1)))


def adapt_model(model: nn.Module, plan: ClassTransfer) -> nn.Module:
    """``model`` (a CANet) with its classifier resized to ``plan``'s new classes.

    Everything but the classifier keeps the starting weights; the classifier's rows come
    from ``transfer_classifier``.
    """
    old = model.classifier
    if list(plan.new_names) == list(plan.old_names):
        return model
    new = nn.Conv2d(old.in_channels, len(plan.new_names), 1, bias=old.bias is not None)
    transfer_classifier(old, new, plan)
    model.classifier = new
    model.num_classes = len(plan.new_names)
    return model


def initial_model(spec: str, backbone: str, names: Sequence[str],
                  class_map: Optional[str] = None, log: Any = print) -> nn.Module:
    """--init-weights: the checkpoint's model, its classifier matched to ``names``.

    fp16 shipping checkpoints load into fp32 weights.
    """
    from ..checkpoint import load_checkpoint, resolve_checkpoint

    model, meta = load_checkpoint(spec, backbone=backbone)
    old_names = [str(n) for n in meta["class_names"]]
    mapping = load_class_map(class_map) if class_map else None
    plan = plan_transfer(old_names, names, mapping)
    log(f"initial weights from {resolve_checkpoint(spec)}")
    if old_names != list(names):
        log(f"classes: {plan.describe()}")
    return adapt_model(model, plan)

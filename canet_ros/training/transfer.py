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
combination (fitted on the run's own frames so that its score follows its parts'
combined score), and a new class from a fresh initialisation. The same mapping turns the
old data set's labels into the new ids, so original frames can be mixed in ("replay").
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import yaml
from torch import nn

from ..classes import name_finder
from ..classes import name_key as _norm
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


def _one(ids: List[int], names: Sequence[str], what: str, whose: str, fix: str) -> Optional[int]:
    """Return the only id, None for none, and refuse an ambiguous loose name."""
    if len(ids) > 1:
        spelled = " and ".join(brief(names[i]) for i in ids)
        raise DatasetError(f"{what} matches {whose} classes {spelled}; {fix}")
    return ids[0] if ids else None


def plan_transfer(old_names: Sequence[str], new_names: Sequence[str],
                  class_map: Optional[Mapping[str, Sequence[str]]] = None) -> ClassTransfer:
    """Match new classes to old ones by the map, else by name."""
    find_old, find_new = name_finder(old_names), name_finder(new_names)
    exactly = "write the name exactly as one of them is spelled"
    mapped: Dict[int, Tuple[str, List[str]]] = {}
    unknown_new = []
    for key, olds in (class_map or {}).items():
        i = _one(find_new(key), new_names, f"class map: {brief(key)}", "the new", exactly)
        if i is None:
            unknown_new.append(key)
        elif i in mapped:
            raise DatasetError(f"class map: {brief(mapped[i][0])} and {brief(key)} both name "
                               f"the new class {brief(new_names[i])}; keep one entry")
        else:
            mapped[i] = (key, list(olds))
    if unknown_new:
        raise DatasetError(f"class map names [{brief_items(unknown_new)}] that are not in the "
                           f"new class list [{brief_items(list(new_names), 50)}]")
    sources: List[List[int]] = []
    for i, new in enumerate(new_names):
        if i not in mapped:
            found = _one(find_old(new), old_names, f"new class {brief(new)}",
                         "the starting model's", "name the one it starts from with --class-map")
            sources.append([] if found is None else [found])
            continue
        olds = mapped[i][1]
        ids = [_one(find_old(o), old_names, f"class map: {brief(new)} <- {brief(o)}",
                    "the starting model's", exactly) for o in olds]
        missing = [o for o, j in zip(olds, ids, strict=True) if j is None]
        if missing:
            raise DatasetError(f"class map: {brief(new)} <- [{brief_items(missing)}]: not classes "
                               f"of the starting model [{brief_items(list(old_names), 50)}]")
        sources.append(list(dict.fromkeys(j for j in ids if j is not None)))  # Car, car: once
    return ClassTransfer(sources, list(old_names), list(new_names))


# Frames and feature pixels a merged row is fitted on: a few seconds on a CPU, and more
# would not change the rows (10 frames of the measured drive fit them as well as 20).
FIT_FRAMES = 32
FIT_PIXELS = 65536
# Ridge, relative to the features' mean variance: only fixes directions the frames never
# vary along (there the row keeps the smallest norm) and leaves the fit itself unchanged.
_RIDGE = 1e-6


def fit_frames(train: Any, mean: Sequence[float], std: Sequence[float],
               size: Sequence[int], limit: int = FIT_FRAMES) -> List[torch.Tensor]:
    """Pick up to ``limit`` of the run's own training frames, evenly spread, as the net sees them.

    ``train`` is the training set; replayed frames of the original data set are left out
    (the merged classes are fitted where the new camera's pixels are). Normalised CHW
    tensors at ``size`` = (W, H).
    """
    from ..data import EvalTransform

    own = train.parts[0] if hasattr(train, "parts") else train
    count = len(own)
    picks = sorted({round(i * (count - 1) / max(limit - 1, 1)) for i in range(limit)}) \
        if count > limit else list(range(count))
    transform = EvalTransform(mean, std, (int(size[0]), int(size[1])))
    return [transform(*own.load(i))[0] for i in picks]


def classifier_inputs(model: nn.Module, frames: Sequence[torch.Tensor],
                      max_pixels: int = FIT_PIXELS) -> Optional[torch.Tensor]:
    """Collect the classifier's inputs over ``frames``: (pixels, channels) float64, or None.

    Each frame gives at most ``max_pixels / len(frames)`` pixels, every k-th.
    """
    rows: List[torch.Tensor] = []
    per_frame = max(1, max_pixels // max(len(frames), 1))

    def keep(module: nn.Module, args: Any, output: Any) -> None:
        x = args[0].detach().float()
        flat = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        rows.append(flat[::max(1, math.ceil(len(flat) / per_frame))].double().cpu())

    handle = model.classifier.register_forward_hook(keep)
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            for image in frames:
                model(image[None].to(device))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(rows) if rows else None


def fit_rows(features: Optional[torch.Tensor], old: nn.Conv2d, sources: Sequence[Sequence[int]]
             ) -> Optional[List[Optional[Tuple[torch.Tensor, torch.Tensor]]]]:
    """Fit rows (weight, bias) by least squares to score each source set's log-sum-exp.

    One (weight, bias) per entry of ``sources`` (old class ids), or None for a row the fit
    could not give; None for all when ``features`` cannot fit any (too few, not finite, no
    variance). Float64, one shared solve: deterministic.
    """
    if features is None or len(features) < 2 or not bool(torch.isfinite(features).all()):
        return None
    w_old = old.weight.detach().double().reshape(old.out_channels, -1)
    b_old = old.bias.detach().double()
    logits = features @ w_old.T + b_old
    targets = torch.stack([torch.logsumexp(logits[:, list(s)], 1) for s in sources], 1)
    mean_f, mean_t = features.mean(0), targets.mean(0)
    centred = features - mean_f
    gram = centred.T @ centred
    scale = float(gram.diagonal().mean())
    if not (math.isfinite(scale) and scale > 0) or not bool(torch.isfinite(targets).all()):
        return None
    gram.diagonal().add_(_RIDGE * scale)
    weights = torch.linalg.solve(gram, centred.T @ (targets - mean_t))  # (channels, rows)
    biases = mean_t - mean_f @ weights
    out: List[Optional[Tuple[torch.Tensor, torch.Tensor]]] = []
    for k in range(len(sources)):
        w, b = weights[:, k], biases[k]
        out.append((w, b) if bool(torch.isfinite(w).all() and torch.isfinite(b)) else None)
    return out


def _mean_rule(old: nn.Conv2d, idx: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    bias = torch.logsumexp(old.bias[idx].float(), 0) if old.bias is not None else None
    return old.weight[idx].float().mean(0), bias


def transfer_classifier(old: nn.Conv2d, new: nn.Conv2d, plan: ClassTransfer,
                        features: Optional[torch.Tensor] = None) -> List[str]:
    """Fill ``new``'s rows from ``old``'s: copied, merged or left as initialised.

    A merged class's score should be its parts' log-sum-exp (their softmax summed), which
    one linear row cannot be everywhere. With ``features`` (the classifier's inputs on the
    run's frames, one row per pixel) its row is the least-squares fit of that log-sum-exp
    on them; without, or where the fit is degenerate, the mean of its parts' weights and
    the log-sum-exp of their biases (right only where the parts' scores agree).
    Returns the names of the merged classes that were fitted.
    """
    merged = [row for row, src in enumerate(plan.sources) if len(src) > 1]
    fits = fit_rows(features, old, [plan.sources[row] for row in merged]) \
        if merged and features is not None and old.bias is not None and new.bias is not None \
        else None
    fitted: List[str] = []
    with torch.no_grad():
        for row, src in enumerate(plan.sources):
            if not src:
                continue
            idx = torch.tensor(src, dtype=torch.long)
            weight, bias = _mean_rule(old, idx)
            fit = fits[merged.index(row)] if fits and row in merged else None
            if fit is not None:
                weight, bias = fit[0].view_as(weight), fit[1]
                fitted.append(plan.new_names[row])
            new.weight[row] = weight.to(new.weight.dtype)
            if new.bias is not None and bias is not None:
                new.bias[row] = bias.to(new.bias.dtype)
    return fitted


def label_lut(plan: ClassTransfer, old_ignore: int, new_ignore: int) -> np.ndarray:
    """256-entry table turning the old data set's ids into the new ones (replay frames).

    Old classes that no new class draws from become ``new_ignore``: the replayed frames
    then teach nothing about them, rather than calling them something they are not. So do
    old classes two new classes draw from (``car: Car`` beside ``vehicle: [Car, Bicyclist]``
    starts both rows from Car's): which of the two a replayed Car pixel is, is unknown.
    """
    lut = np.full(256, new_ignore, dtype=np.uint8)
    drawn = np.zeros(256, dtype=np.int64)
    for new_id, src in enumerate(plan.sources):
        for old_id in src:
            lut[old_id] = new_id
            drawn[old_id] += 1
    lut[drawn > 1] = new_ignore
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


def adapt_model(model: nn.Module, plan: ClassTransfer,
                frames: Optional[Sequence[torch.Tensor]] = None, log: Any = None) -> nn.Module:
    """``model`` (a CANet) with its classifier resized to ``plan``'s new classes.

    Everything but the classifier keeps the starting weights; the classifier's rows come
    from ``transfer_classifier``, merged rows fitted on ``frames`` (normalised CHW images
    at the network's input size) when given.
    """
    old = model.classifier
    if list(plan.new_names) == list(plan.old_names):
        return model
    merged = [n for n, src in zip(plan.new_names, plan.sources, strict=True) if len(src) > 1]
    features = classifier_inputs(model, frames) if merged and frames else None
    new = nn.Conv2d(old.in_channels, len(plan.new_names), 1, bias=old.bias is not None)
    fitted = transfer_classifier(old, new, plan, features)
    model.classifier = new
    model.num_classes = len(plan.new_names)
    if log is not None and merged:
        log(_merge_note(merged, fitted, frames, features))
    return model


def _merge_note(merged: List[str], fitted: List[str],
                frames: Optional[Sequence[torch.Tensor]], features: Optional[torch.Tensor]
                ) -> str:
    rest = [n for n in merged if n not in fitted]
    parts = []
    if fitted:
        parts.append(f"{', '.join(fitted)} fitted to their parts' combined scores on "
                     f"{len(frames or [])} training frames ({len(features)} feature pixels)")
    if rest:
        why = "no training frames" if not frames else "fit degenerate on the training frames"
        parts.append(f"{', '.join(rest)} from the mean of their parts' weights ({why})")
    return "merged classes: " + "; ".join(parts)


def initial_model(spec: str, backbone: str, names: Sequence[str],
                  class_map: Optional[str] = None, log: Any = print,
                  frames: Optional[Sequence[torch.Tensor]] = None) -> nn.Module:
    """--init-weights: the checkpoint's model, its classifier matched to ``names``.

    fp16 shipping checkpoints load into fp32 weights. ``frames`` (the run's own training
    frames, normalised, at the network's input size) fit the rows of merged classes.
    """
    from ..checkpoint import load_checkpoint, resolve_checkpoint

    model, meta = load_checkpoint(spec, backbone=backbone)
    old_names = [str(n) for n in meta["class_names"]]
    mapping = load_class_map(class_map) if class_map else None
    plan = plan_transfer(old_names, names, mapping)
    log(f"initial weights from {resolve_checkpoint(spec)}")
    if old_names != list(names):
        log(f"classes: {plan.describe()}")
    return adapt_model(model, plan, frames, log)

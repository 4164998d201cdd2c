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

"""Training configuration: defaults (the paper's recipe) < YAML file < command-line flags.

On --resume the run's saved config lies between the defaults and the YAML file
(``config_from_args``; where each comes from: config_sources.py).

The paper's ImageNet start of the backbone is not a default (``pretrained_backbone``):
the file cannot be downloaded on every machine.

Every field is a flag (``lr`` -> ``--lr``, ``train_exclude`` -> ``--train-exclude``), so
nothing needs code changes to override. The resolved config is written next to the run
(``config.yaml``) and into every checkpoint (``train_args``).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import yaml

from ..classes import CLASS_SETS
from ..errors import brief, brief_items
from ..fs_names import spelled_as_text
from .config_files import load_yaml, resolve_config, shipped_configs  # noqa: F401 (API)
from .config_sources import (  # noqa: F401 (API: resolve_train_args, PATH_FIELDS)
    PATH_FIELDS,
    check_resumed_frames,
    read_config_file,
    resolve_train_args,
    resumed_run_values,
)
from .config_types import FORMS, check_value, parse_val_set
from .valset_names import holdout_set_name, val_set_names  # noqa: F401 (API: holdout_set_name)

TRAIN_LAYERS = ("all", "decoder", "head", "classifier")


@dataclass
class TrainConfig:
    # Model and data.
    # None: the --init-weights (or --resume) checkpoint's backbone, else mobilenetv2.
    backbone: Optional[str] = None
    dataset: str = "camvid"
    data_root: Optional[str] = None
    train_split: str = "train"
    train_include: List[str] = field(default_factory=list)
    train_exclude: List[str] = field(default_factory=list)
    # Each: {name, split, include: [...], exclude: [...]}; selection uses their mean mIoU.
    val_sets: List[Dict[str, Any]] = field(
        default_factory=lambda: [{"name": "val", "split": "val"}])
    # Leave-one-drive-out: this sequence (CamVid 0006R0, a Cityscapes city) is removed
    # from training and scored as its own validation set, which then picks best.pt.
    holdout: Optional[str] = None
    # Validation set whose mIoU picks best.pt; None = the holdout set if any, else the
    # mean over all sets.
    select_on: Optional[str] = None
    # true: torchvision's ImageNet file from the torch hub cache; a path: that .pth file.
    pretrained_backbone: Union[bool, str] = False
    # Fine-tuning: start from this checkpoint's weights ("default" = the bundled model)
    # with a fresh optimiser and schedule. Unlike --resume it does not continue a run.
    init_weights: Optional[str] = None
    # Fine-tuning onto other classes: YAML 'new class: old class | [old, ...]' for renamed
    # or merged classes; the rest match by name, and unmatched classes start fresh.
    class_map: Optional[str] = None
    # Which parts train: all | decoder (context backbone frozen) | head (backbone and
    # spatial branch frozen) | classifier. Frozen parts keep their BatchNorm statistics.
    train_layers: str = "all"
    # Total optimiser steps; replaces epochs (a few labelled frames make tiny epochs).
    steps: Optional[int] = None
    # Replay: frames of the original data set mixed in (replay_ratio per own frame, drawn
    # afresh each epoch), their labels mapped to this run's classes, so the rest is not
    # forgotten.
    replay_dataset: Optional[str] = None
    replay_root: Optional[str] = None
    replay_split: str = "train"
    replay_exclude: List[str] = field(default_factory=list)
    replay_ratio: float = 0.0
    # Paper section 4.1: Adam, lr 1e-4, weight decay 1e-4, batch 8, poly (0.9).
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    momentum: float = 0.9
    batch_size: int = 8
    epochs: int = 100
    poly_power: float = 0.9
    # Weighted cross-entropy: "enet" = 1 / ln(c + p_class) from training labels, or "none".
    class_weighting: str = "enet"
    enet_c: float = 1.02
    class_weights: Optional[List[float]] = None
    # Augmentation: random scale of base_size, flip, crop (width, height).
    crop_size: List[int] = field(default_factory=lambda: [480, 360])
    late_crop_size: Optional[List[int]] = None
    late_crop_epochs: int = 0
    base_size: Optional[List[int]] = None
    scale_min: float = 0.5
    scale_max: float = 2.0
    flip: bool = True
    # Photometric jitter strength s: brightness, contrast and saturation factors drawn
    # from [1-s, 1+s], gamma from [exp(-s), exp(s)]; 0 = off. For lighting robustness.
    photometric: float = 0.0
    # Camera roll: rotation drawn from [-rotate, rotate] degrees (0 = off); the corners
    # it uncovers are black in the frame and ignored in the label.
    rotate: float = 0.0
    # Probability of a Gaussian blur (sigma 0.3-1.5 px): defocus and motion blur.
    blur: float = 0.0
    # Probability that a frame gets a box of another frame of its batch pasted in, labels
    # included (CutMix; training/mixing.py); 0 = off.
    cutmix: float = 0.0
    # Exponential moving average of the weights (e.g. 0.999; 0 = off). Validation and
    # best.pt then use the averaged weights.
    ema_decay: float = 0.0
    # Normalisation; None = compute from the training frames (zero mean, unit variance).
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None
    # Network input at evaluation (width, height); None = the --resume/--init-weights
    # checkpoint's input size, else the validation frames' size.
    input_size: Optional[List[int]] = None
    # Runtime.
    val_every: int = 1
    eval_batch_size: int = 4
    workers: int = 2
    cache: bool = True
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    threads: Optional[int] = None
    seed: int = 0
    deterministic: bool = False
    out_dir: str = "runs/canet"
    # After training: best.pt (last.pt where nothing is validated) written as an fp16
    # checkpoint to ship, with this class-prior correction strength baked in (the bundled
    # model uses 0.75; docs/training.md). A correction without a path goes to
    # <out_dir>/model.pt.
    export: Optional[str] = None
    export_prior_correction: Optional[float] = None
    resume: Optional[str] = None
    max_steps_this_run: Optional[int] = None
    progress: bool = True

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_HELP = {
    "val_sets": "validation set as NAME=SPLIT[:INCLUDE_PREFIX,...] (repeatable)",
    "late_crop_size": "crop (W H) used for the last --late-crop-epochs epochs",
    "max_steps_this_run": "stop (resumably) after this many optimiser steps in this invocation",
    "class_weighting": "enet (1/ln(c+p)) or none",
    "resume": "checkpoint (last.pt) to continue from exactly",
    "init_weights": "checkpoint (or 'default') whose weights start a new run (fine-tuning)",
    "photometric": "brightness/contrast/saturation/gamma jitter strength, 0 = off",
    "holdout": "leave this drive/sequence (e.g. 0006R0) out of training and select on it",
    "select_on": "validation set name whose mIoU selects best.pt (default: the holdout "
                 "set, else the mean over all sets)",
    "train_split": "split to train on; join several with + (train+val)",
    "ema_decay": "keep an exponential moving average of the weights (e.g. 0.999)",
    "rotate": "random rotation range in degrees (camera roll), 0 = off",
    "blur": "probability of a random Gaussian blur, 0 = off",
    "cutmix": "probability of pasting a box of another frame (and its labels), 0 = off",
    "class_map": "YAML of 'new class: old class(es)' for --init-weights with other classes",
    "train_layers": "which parts train: " + " | ".join(TRAIN_LAYERS),
    "steps": "total optimiser steps (replaces --epochs)",
    "replay_dataset": "original data set (camvid, cityscapes, folder) mixed into training",
    "replay_ratio": "replayed original frames per frame of the training set",
    "export": "after training, write best.pt (else last.pt) as an fp16 shipping checkpoint",
    "export_prior_correction": "class-prior correction (0..2) baked into the exported "
                               "checkpoint (<out-dir>/model.pt unless --export; the bundled "
                               "model uses 0.75; docs/training.md)",
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, defaulting to None so only given flags override."""
    parser.add_argument("--config", type=Path, default=None, help="YAML config file")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = str(f.type)
        kw: Dict[str, Any] = {"default": None, "dest": f.name, "help": _HELP.get(f.name)}
        if f.name == "val_sets":
            # extend: a repeated flag adds sets (the last one alone used to win); bare: none
            kw.update(nargs="*", type=parse_val_set, action="extend")
        elif hint == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif "List[int]" in hint:
            kw.update(nargs="+", type=int)
        elif "List[float]" in hint:
            kw.update(nargs="+", type=float)
        elif "List[str]" in hint:  # repeated flags add up, as --val-sets
            kw.update(nargs="*", type=str, action="extend")
        elif f.name in FORMS:  # the same rule a config file's value meets (check_values)
            kw["type"] = FORMS[f.name][0]
        elif "int" in hint:
            kw["type"] = int
        elif "float" in hint:
            kw["type"] = float
        else:
            kw["type"] = str
        parser.add_argument(flag, **kw)


def check_values(values: Mapping[str, Any], origin: str) -> Dict[str, Any]:
    """Return config-file values converted as their flags convert them; refuse the rest.

    Raises ValueError "ORIGIN: KEY: expected ..., got ..." for the first value of the wrong
    form, so that it is one line before any data loads (config_types.py).
    """
    hints = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    unknown = sorted((str(k) for k in set(values) - set(hints)), key=str)  # YAML keys: any type
    if unknown:
        shown = ", ".join(k[:40] for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ValueError(f"{origin}: unknown training option(s): {shown}")
    out: Dict[str, Any] = {}
    for key, value in values.items():
        try:  # None (an empty YAML value) leaves the default
            out[key] = None if value is None else check_value(key, hints[key], value)
        except ValueError as exc:
            raise ValueError(f"{origin}: {exc}") from None
    return out


def merge_config(yaml_values: Optional[Mapping[str, Any]] = None,
                 cli_values: Optional[Mapping[str, Any]] = None,
                 origin: str = "config file") -> TrainConfig:
    """Defaults, then YAML, then non-None CLI values (``layer_values``); unknown keys are an error.

    ``yaml_values`` (from ``origin``: a YAML file, a checkpoint's train_args) are checked
    and converted here; ``cli_values`` come typed from argparse (or from code).
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in (cli_values or {}).items() if k in known}
    cfg = TrainConfig(**layer_values(check_values(yaml_values or {}, origin), given))
    validate(cfg)
    return cfg


def layer_values(lower: Mapping[str, Any], upper: Mapping[str, Any]) -> Dict[str, Any]:
    """Return ``upper``'s values (None: not given) laid over ``lower``'s.

    ``steps`` replaces ``epochs``, so an epoch count given without steps also drops a lower
    layer's steps: ``--epochs 5`` over a config's ``steps: 300`` trains 5 epochs.
    """
    given = {k: v for k, v in upper.items() if v is not None}
    out = {k: v for k, v in lower.items() if v is not None}
    if "epochs" in given and "steps" not in given:
        out.pop("steps", None)
    out.update(given)
    return out


def config_from_args(args: argparse.Namespace,
                     resumed: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """Return the config of parsed ``canet train`` arguments.

    Defaults < on a resume the run's saved config < the --config file < the flags; each
    source is checked on its own, so an error names its file. ``resumed``: the --resume
    checkpoint, where the caller has read it already. A resume that would change which
    frames the run trains or selects on is refused (``check_resumed_frames``).
    """
    config, resume = getattr(args, "config", None), getattr(args, "resume", None)
    from_file = check_values(read_config_file(config), str(config)) if config else {}
    resume = resume or from_file.get("resume")
    saved = check_values(resumed_run_values(resume, resumed), str(resume)) if resume else {}
    cfg = merge_config(layer_values(saved, from_file), vars(args),
                       str(config or resume or "config file"))
    if saved:  # else not a run's last.pt: the trainer says so
        # The run's values over today's defaults: what its frames were chosen by.
        check_resumed_frames(resume, TrainConfig(**layer_values({}, saved)).to_dict(),
                             cfg.to_dict(), vars(args), from_file, config)
    return cfg


def validate(cfg: TrainConfig) -> None:
    if cfg.optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be adam or sgd, not {brief(cfg.optimizer)}")
    if cfg.class_weighting not in ("enet", "none"):
        raise ValueError(f"class_weighting must be enet or none, not {brief(cfg.class_weighting)}")
    for name in ("crop_size", "late_crop_size", "base_size", "input_size"):
        v = getattr(cfg, name)
        if v is not None and (len(v) != 2 or min(v) < 1):
            raise ValueError(f"{name} must be two positive integers WIDTH HEIGHT, got {v}")
    for name in ("mean", "std"):  # from flags; a short list failed in torch's reshape
        if getattr(cfg, name) is not None:
            check_value(name, "List[float]", getattr(cfg, name))
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError("epochs and batch_size must be positive")
    if not (0 < cfg.scale_min <= cfg.scale_max):
        raise ValueError("need 0 < scale_min <= scale_max")
    if not (0.0 <= cfg.photometric < 1.0):
        raise ValueError(f"photometric must be in [0, 1), got {cfg.photometric}")
    if not (0.0 <= cfg.ema_decay < 1.0):
        raise ValueError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if not (0.0 <= cfg.cutmix <= 1.0):
        raise ValueError(f"cutmix must be in [0, 1], got {cfg.cutmix}")
    if not (0.0 <= cfg.blur <= 1.0) or not (0.0 <= cfg.rotate <= 45.0):
        raise ValueError(f"blur must be in [0, 1] and rotate in [0, 45] degrees, "
                         f"got {cfg.blur} and {cfg.rotate}")
    if cfg.train_layers not in TRAIN_LAYERS:
        raise ValueError(f"train_layers must be one of {', '.join(TRAIN_LAYERS)}, "
                         f"not {brief(cfg.train_layers)}")
    if cfg.steps is not None and cfg.steps < 1:
        raise ValueError(f"steps must be at least 1, got {cfg.steps}")
    if not (0.0 <= cfg.replay_ratio <= 100.0) or (cfg.replay_ratio > 0 and not
                                                  cfg.replay_dataset):
        raise ValueError("replay_ratio must be in [0, 100] (0 = no replay) and needs a "
                         "replay_dataset")
    if cfg.replay_dataset == "folder" and cfg.replay_ratio > 0 and not cfg.replay_root:
        raise ValueError("replay_dataset 'folder' needs its folder (--replay-root DIR)")
    _validate_loss_and_schedule(cfg)
    strength = cfg.export_prior_correction
    if strength is not None and not 0.0 <= strength <= 2.0:  # also rejects nan
        raise ValueError(f"export_prior_correction must be between 0 and 2, got {strength}")
    if strength and cfg.class_weighting != "enet" and not cfg.class_weights:
        # Fail now, not after hours of training.
        raise ValueError("export_prior_correction: this run trains without class weights, "
                         "so there is no class prior to correct")
    names = val_set_names(cfg)
    if cfg.select_on and cfg.select_on not in names:
        raise ValueError(f"select_on {brief(cfg.select_on)} is not a validation set "
                         f"(have {', '.join(map(str, names)) or 'none'})")


def _validate_loss_and_schedule(cfg: TrainConfig) -> None:
    # Each of these would otherwise fail mid-run (a traceback at the first or the last
    # step) or, worse, train silently with negative weights.
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"lr must be a positive number, got {cfg.lr}")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise ValueError(f"weight_decay must be at least 0, got {cfg.weight_decay}")
    if not (math.isfinite(cfg.poly_power) and cfg.poly_power > 0):
        raise ValueError(f"poly_power must be positive, got {cfg.poly_power}")
    if not (math.isfinite(cfg.enet_c) and cfg.enet_c > 1):
        # c <= 1 makes ln(c + p) zero or negative for some share p: weights blow up or
        # turn negative.
        raise ValueError(f"enet_c must be greater than 1, got {cfg.enet_c}")
    if cfg.class_weights is not None:
        known = CLASS_SETS.get(cfg.dataset)  # a folder's classes are known once it is read
        check_class_weights(cfg.class_weights, known.num_classes if known else None)


def check_class_weights(weights: Sequence[float], num_classes: Optional[int]) -> None:
    """Refuse class weights that are not one positive finite number per class.

    ``num_classes`` None checks the values only (the class count is not known yet).
    """
    if not weights or not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError("class_weights must be positive numbers, got "
                         f"[{brief_items(list(weights))}]")
    if num_classes is not None and len(weights) != num_classes:
        raise ValueError(f"class_weights has {len(weights)} values for {num_classes} classes; "
                         f"give one per class")


def portable_train_args(cfg: TrainConfig, run_dir: Union[str, Path]) -> Dict[str, Any]:
    """Return the config with its paths relative to the run folder.

    Checkpoints and config.yaml travel (shipped models, copied run folders), so they must
    not carry the training machine's folder names; ``resolve_train_args`` reverses this.
    """
    values = cfg.to_dict()
    base = Path(run_dir).resolve()
    for name in PATH_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value and value != "default":
            values[name] = os.path.relpath(Path(value).resolve(), base)
    return values


def save_config(cfg: TrainConfig, path: Union[str, Path]) -> None:
    # As UTF-8 text, as read_config_file reads a config: the same names under any locale.
    values = spelled_as_text(portable_train_args(cfg, Path(path).parent))
    Path(path).write_text(yaml.safe_dump(values, sort_keys=False))

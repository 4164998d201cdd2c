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

"""What an evaluation scores: the drive a holdout means, the data set, the path it runs on.

Split out of ``evaluation``: the choices made before any frame is scored, and the
messages that say what to give instead when one cannot be made.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from .classes import ClassSet


def holdout_scope(train_args: Mapping[str, Any], drive: str, split: Optional[str],
                  include: Optional[Sequence[str]]) -> Tuple[str, List[str]]:
    """Return the split and filter that score ``drive`` as its training run selected on it.

    A run trained with ``--holdout DRIVE`` selected on that drive's frames of its own
    training split(s); any other checkpoint is scored on the drive's frames of train+val.
    An explicit ``split`` wins.
    """
    if split is None:
        own = train_args.get("train_split") if train_args.get("holdout") == drive else None
        split = str(own) if own else "train+val"
    if include:
        raise ValueError(f"--holdout {drive} scores that drive's frames and takes --exclude, "
                         f"not --include; for part of the drive give --split {split} "
                         f"--include PREFIX instead of --holdout")
    return split, [drive]


def scoring_data(checkpoint: str, meta: Mapping[str, Any], dataset: str,
                 data_root: Optional[str], split: str, transform: Any,
                 include: Optional[Sequence[str]], exclude: Optional[Sequence[str]]
                 ) -> Tuple[ClassSet, Any]:
    """Return the dataset's class set and the dataset to score, or say what to give instead."""
    from .checkpoint import CheckpointError
    from .data import DatasetError, build_dataset

    try:
        expected = _dataset_classes(checkpoint, meta, dataset, data_root)
        ds = build_dataset(dataset, data_root, split, transform, include=include,
                           exclude=exclude)
    except (CheckpointError, DatasetError) as exc:
        _name_trained_dataset(exc, meta, dataset)
        raise
    return expected, ds


def engine_path(size: Optional[Tuple[int, int]], prior_correction: Optional[float], ds: Any,
                tta: Any) -> bool:
    """Return whether the inference engine can score this (as segment-bag and the node run)."""
    return (size is not None and min(size) >= 32  # the engine's smallest input
            and prior_correction is None and hasattr(ds, "load")
            and (tta is None or tuple(tta.scales) == (1.0,)))


def refuse_torch_precision(precision: str) -> None:
    """Refuse a precision other than fp32 where only the torch path can score."""
    if precision not in ("fp32", "auto"):
        raise ValueError(f"precision {precision!r} runs through the inference engine, which "
                         f"this evaluation cannot use (multi-scale TTA, --prior-correction, "
                         f"or a network input under 32 px or unset); use --precision fp32")


def run_dir(checkpoint: str) -> Optional[Path]:
    """Return the folder a checkpoint's train_args paths start from: the one it lies in."""
    from .checkpoint import CheckpointError, resolve_checkpoint

    try:
        return resolve_checkpoint(checkpoint).resolve().parent
    except CheckpointError:
        return None


def _name_trained_dataset(exc: Exception, meta: Mapping[str, Any], dataset: str) -> None:
    """Add the ``--dataset`` the checkpoint trained on to ``exc``, where not ``dataset``."""
    trained = (meta.get("train_args") or {}).get("dataset")
    if trained and trained != dataset:
        root = " --data-root DIR" if trained == "folder" else ""
        sep = "\n" if "\n" in str(exc) else "; "  # a list of a folder's problems: its own line
        exc.args = (f"{exc}{sep}this checkpoint was trained on dataset {trained!r}: to score "
                    f"it on that data give --dataset {trained}{root}", *exc.args[1:])


def _dataset_classes(checkpoint: str, meta: dict, dataset: str, data_root: Optional[str]
                     ) -> ClassSet:
    """Return the dataset's class set, refusing a checkpoint that predicts other classes."""
    from .checkpoint import CheckpointError, class_set_from_metadata
    from .data import dataset_class_set

    cs = class_set_from_metadata(meta)
    expected = dataset_class_set(dataset, data_root)
    if cs.num_classes != expected.num_classes or (
            dataset == "folder" and list(cs.names) != list(expected.names)):
        raise CheckpointError(f"{checkpoint}: model predicts {cs.num_classes} classes "
                              f"{list(cs.names)} but {data_root or dataset} has "
                              f"{expected.num_classes}: {list(expected.names)}")
    return expected

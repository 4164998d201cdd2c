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

"""What a checkpoint must hold before anything uses it, and the error that says why not.

``checkpoint.read_checkpoint`` runs them on every file it loads. ``CheckpointError`` lives
here, the lower module, so both raise it; ``canet_ros.checkpoint`` re-exports it with the
format constants. torch and the model registry are imported inside the checks that need
them, as in ``checkpoint``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from .errors import CanetError

FORMAT = "canet_ros.checkpoint"
FORMAT_VERSION = 1
# Raise it whenever read_checkpoint gains a refusal (NaN weights, checksums, metadata
# checks): a cached ONNX export records the checks its checkpoint passed, and one made
# under fewer is a miss, so the torch path reads the file again (an old version's cache
# entry let a diverged checkpoint run torch-free after the NaN check came in).
LOAD_CHECKS = 1
_REQUIRED = ("format", "format_version", "backbone", "num_classes", "class_names", "palette",
             "ignore_index", "mean", "std", "state_dict")

PathLike = Union[str, os.PathLike]


class CheckpointError(CanetError, RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def check_metadata(path: Path, blob: Any) -> None:
    """Refuse a loaded file that is not a checkpoint of a format and model this canet_ros has."""
    if not isinstance(blob, dict):
        raise CheckpointError(f"{path}: a torch file holding a {type(blob).__name__} without "
                              f"canet_ros metadata, not a canet_ros checkpoint")
    if blob.get("format") != FORMAT:
        what = ("a bare state_dict" if blob and all(hasattr(v, "shape") for v in blob.values())
                else "a dict")
        raise CheckpointError(f"{path}: a torch file holding {what} without canet_ros "
                              f"metadata, not a canet_ros checkpoint")
    missing = [k for k in _REQUIRED if k not in blob]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    version = blob["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version!r} is newer than this "
                              f"canet_ros supports ({FORMAT_VERSION})")
    from .models import BACKBONES

    if blob["backbone"] not in BACKBONES:
        raise CheckpointError(f"{path}: a checkpoint for backbone {blob['backbone']!r}, which "
                              f"this canet_ros does not have ({', '.join(BACKBONES)})")
    _check_classes(path, blob)


def _check_classes(path: Path, blob: Mapping[str, Any]) -> None:
    """Check what the model and every tool build from: a class count the names agree with."""
    count = blob["num_classes"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CheckpointError(f"{path}: num_classes {count!r} is not a positive integer")
    for key in ("class_names", "palette"):
        value = blob.get(key)
        if not isinstance(value, (list, tuple)) or len(value) != count:
            have = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
            raise CheckpointError(f"{path}: {key} has {have} entries for {count} classes")
    if not all(isinstance(name, str) for name in blob["class_names"]):
        raise CheckpointError(f"{path}: class_names must all be strings")
    for colour in blob["palette"]:
        if not _ints(colour, 3, 0, 255):
            raise CheckpointError(f"{path}: palette entry {colour!r} is not three integers "
                                  f"0-255 (R, G, B)")
    ignore = blob["ignore_index"]
    if not _ints([ignore], 1, 0, None):
        raise CheckpointError(f"{path}: ignore_index {ignore!r} is not an integer >= 0")
    check_ignore(path, blob)
    _check_normalisation(path, blob)


def check_ignore(path: Optional[PathLike], meta: Mapping[str, Any]) -> None:
    """Refuse an ignore id that is also a class id.

    Every score drops the ignore id's pixels, so that class would silently vanish from
    mIoU and the per-class table (classes.yaml refuses the same).
    """
    count, ignore = int(meta["num_classes"]), int(meta["ignore_index"])
    if ignore < count:
        raise CheckpointError(f"{path or 'checkpoint'}: ignore_index {ignore} is the id of "
                              f"class {ignore} ({meta['class_names'][ignore]!r}); the ignore "
                              f"id must be past the {count} classes")


def _ints(values: Any, length: int, low: int, high: Optional[int]) -> bool:
    """Whether ``values`` is ``length`` integers (not bools) in ``[low, high]``."""
    return (isinstance(values, (list, tuple)) and len(values) == length
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= low
                    and (high is None or v <= high) for v in values))


def _check_normalisation(path: Path, blob: Mapping[str, Any]) -> None:
    """mean/std per RGB channel (std > 0) and the training input size every tool reads."""
    for key in ("mean", "std"):
        value = blob[key]
        numbers = isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value)
        if not numbers or (key == "std" and min(value) <= 0):
            raise CheckpointError(f"{path}: {key} {value!r} is not three finite numbers"
                                  f"{' > 0' if key == 'std' else ''} (one per RGB channel)")
    size = blob.get("input_size")
    if size is not None and not _ints(size, 2, 1, None):
        raise CheckpointError(f"{path}: input_size {size!r} is not [width, height] in pixels")


def check_finite(path: Path, blob: Mapping[str, Any]) -> None:
    """Refuse NaN or infinite weights (a diverged run's): they run without an error.

    The EMA copy that a last.pt keeps for resuming counts too.
    """
    named = list(blob["state_dict"].items()) if isinstance(blob["state_dict"], Mapping) else []
    ema = blob["train_state"].get("ema") if isinstance(blob.get("train_state"), Mapping) else None
    if isinstance(ema, Mapping) and isinstance(ema.get("weights"), Mapping):
        named += [(f"train_state.ema.{k}", v) for k, v in ema["weights"].items()]
    bad = [name for name, tensor in named if _nonfinite(tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} of its {len(named)} tensors {'holds' if len(bad) == 1 else 'hold'}"
            f" NaN or infinite values (the first: {bad[0]}); the training run that wrote it "
            f"diverged: train again with a lower --lr, or pick an earlier checkpoint")


def _nonfinite(tensor: Any) -> bool:
    """Whether a floating tensor holds a NaN or an infinity: then its sum does (one pass).

    Only a sum that overflowed (large fp16 values) has its values checked one by one.
    """
    import torch

    return (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
            and not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()))

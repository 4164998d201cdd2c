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

"""The one checkpoint format: a state_dict plus everything needed to run it.

Files are plain dicts of tensors, strings, numbers and lists, so they load with
``torch.load(..., weights_only=True)`` and nothing else. Writes are atomic.

torch is imported inside the functions that need it: the command line names
``CheckpointError`` and ``read_checkpoint`` while building ``--help``, which must
stay fast.
"""
from __future__ import annotations

import math
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from .atomic_write import WriteError, write_atomic  # noqa: F401 (what it raises)
from .errors import CanetError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .classes import ClassSet

FORMAT = "canet_ros.checkpoint"
FORMAT_VERSION = 1
# Raise it whenever read_checkpoint gains a refusal (NaN weights, checksums, metadata
# checks): a cached ONNX export records the checks its checkpoint passed, and one made
# under fewer is a miss, so the torch path reads the file again (an old version's cache
# entry let a diverged checkpoint run torch-free after the NaN check came in).
LOAD_CHECKS = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "canet_mobilenetv2_camvid.pt"
_REQUIRED = ("format", "format_version", "backbone", "num_classes", "class_names", "palette",
             "ignore_index", "mean", "std", "state_dict")
# torch.save's legacy (non-zip) format opens with a pickled magic number (LONG1, 10 bytes).
_LEGACY_MAGIC = b"\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"

PathLike = Union[str, os.PathLike]


class CheckpointError(CanetError, RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def _plain(value: Any) -> Any:
    """Reduce config values to types weights_only unpickling accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "numel") and callable(value.numel) and value.numel() == 1:  # tensors
        return value.item()
    if hasattr(value, "item") and getattr(value, "size", 2) == 1:  # numpy scalars
        return value.item()
    return str(value)


def build_metadata(backbone: str, class_set: ClassSet, *, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD,
                   input_size: Optional[Tuple[int, int]] = None,
                   train_args: Optional[Mapping[str, Any]] = None,
                   metrics: Optional[Mapping[str, Any]] = None,
                   lineage: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Checkpoint metadata; ``input_size`` is the training input (width, height).

    ``lineage`` (``canet_ros.data.seen``): where the weights came from and, for a dataset
    folder, the frames trained on; its own key, since ``train_args`` are read back as a
    config on resume.
    """
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backbone": backbone,
        "num_classes": class_set.num_classes,
        "class_set": class_set.name,
        "class_names": list(class_set.names),
        "palette": [list(map(int, c)) for c in class_set.colors],
        "ignore_index": int(class_set.ignore_index),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "input_size": list(input_size) if input_size else None,
        "train_args": _plain(train_args or {}),
        "metrics": _plain(metrics or {}),
    }
    if lineage is not None:
        meta["lineage"] = _plain(lineage)
    return meta


def save_checkpoint(path: PathLike, model: nn.Module, metadata: Mapping[str, Any], *,
                    half: bool = False, extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Write atomically (temp file in the same folder, then rename).

    ``half`` stores floating tensors as fp16 (for shipping); ``extra`` adds
    resumable training state (optimiser, scheduler, RNG) under its own keys. A failed
    write (a full disk ...) raises WriteError naming ``path`` and the reason; ``path``
    stays as it was.
    """
    import torch

    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    blob = dict(metadata)
    blob["state_dict"] = state
    if extra:
        blob.update(extra)
    needed = sum(v.numel() * v.element_size() for v in state.values())
    return write_atomic(path, lambda fh: torch.save(blob, fh), needed)


def resolve_checkpoint(spec: Optional[PathLike]) -> Path:
    """``None`` or ``"default"`` -> the bundled model; anything else is a path."""
    if spec is None or str(spec) in ("", "default"):
        if not DEFAULT_CHECKPOINT.is_file():
            raise CheckpointError(f"{DEFAULT_CHECKPOINT}: the bundled default model is missing "
                                  "from this installation")
        return DEFAULT_CHECKPOINT
    return Path(spec).expanduser()


def _file_kind(path: Path) -> str:
    """Return what a file is, judged from its bytes before torch sees it.

    One of ``"torch"``, ``"empty"``, ``"damaged"`` (a zip archive cut short), ``"corrupt"``
    (a record whose bytes fail its CRC), ``"zip"`` (a zip archive that torch.save did not
    write) or ``"other"``.
    """
    with open(path, "rb") as fh:
        head = fh.read(32)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            return "damaged"
        with zipfile.ZipFile(path) as archive:
            # torch.save writes <archive name>/data.pkl next to the tensor records.
            if not any(n.endswith("/data.pkl") for n in archive.namelist()):
                return "zip"
            # torch.load does not check the records' CRCs: flipped bytes would load as
            # garbage weights without a word.
            return "corrupt" if archive.testzip() is not None else "torch"
    if head[:1] == b"\x80" and _LEGACY_MAGIC in head:
        return "torch"
    return "other"


_NOT_TORCH = {
    "empty": "an empty file, not a canet_ros checkpoint",
    "damaged": "a damaged or truncated torch file (its zip archive is incomplete), unreadable",
    "corrupt": "a damaged torch file (a record fails its checksum), unreadable",
    "zip": "a zip archive but not a torch file, so not a canet_ros checkpoint",
    "other": "not a torch file, so not a canet_ros checkpoint",
}


def _torch_load(path: Path, map_location: Union[str, torch.device]) -> Any:
    """``torch.load(weights_only=True)`` with failures turned into one plain sentence.

    torch's own messages suggest loading with ``weights_only=False``, which runs any
    code the file holds; that advice must never reach a user, so it is not passed on.
    """
    try:
        kind = _file_kind(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    if kind != "torch":
        raise CheckpointError(f"{path}: {_NOT_TORCH[kind]}")
    import pickle

    import torch

    from .warning_filters import quiet_warnings  # thread-safe catch_warnings

    try:
        with quiet_warnings():  # pickle-protocol notes: noise for a user
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _truncated(exc):
            raise CheckpointError(f"{path}: a torch file holding pickled Python objects (such "
                                  f"as a whole model), not a canet_ros checkpoint of tensors "
                                  f"and metadata") from exc
        raise CheckpointError(f"{path}: {_load_failure(path, exc)}") from exc
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, KeyError ...
        raise CheckpointError(f"{path}: {_load_failure(path, exc)}") from exc


def _truncated(exc: BaseException) -> bool:
    """Whether a failed load ran out of bytes (a file cut short), not a refused object.

    Before torch 2.5 a ``weights_only`` load wraps every RuntimeError, the C++ reader's
    "unexpected EOF" included, in an UnpicklingError (its text appended after
    "WeightsUnpickler error:", the original kept as ``__context__``), so the type alone
    does not tell a truncated file from a pickled model.
    """
    for err in (exc, exc.__context__):
        text = str(err)
        if isinstance(err, EOFError) or re.search(r"\bEOF", text) or "data was truncated" in text:
            return True
    return False


def _load_failure(path: Path, exc: Exception) -> str:
    """Describe a torch file that torch.load refused: damaged, or why not."""
    damaged = _truncated(exc)
    if not damaged and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip() is not None
        except (zipfile.BadZipFile, OSError, EOFError):
            damaged = True
    if damaged:
        return "a damaged or truncated torch file, unreadable"
    # torch's first sentence names the cause (e.g. a CUDA tensor on a machine without CUDA).
    first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
    return f"a torch file that cannot be loaded here: {first or type(exc).__name__}"


def _check_metadata(path: Path, blob: Any) -> None:
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
    _check_ignore(path, blob)
    _check_normalisation(path, blob)


def _check_ignore(path: Optional[PathLike], meta: Mapping[str, Any]) -> None:
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


def read_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu"
                    ) -> Dict[str, Any]:
    """Load and validate the raw dict (weights_only=True)."""
    path = resolve_checkpoint(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    blob = _torch_load(path, map_location)
    _check_metadata(path, blob)
    _check_finite(path, blob)
    return blob


def _check_finite(path: Path, blob: Mapping[str, Any]) -> None:
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


def load_checkpoint(path: PathLike, *, backbone: Optional[str] = None,
                    map_location: Union[str, torch.device] = "cpu"
                    ) -> Tuple[nn.Module, Dict[str, Any]]:
    """Build the model a checkpoint describes and load its weights; returns (model, metadata).

    ``backbone``, when given, must match the checkpoint's.
    """
    from .models import build_canet

    blob = read_checkpoint(path, map_location)
    path = resolve_checkpoint(path)
    if backbone is not None and backbone != blob["backbone"]:
        raise CheckpointError(backbone_mismatch(path, blob["backbone"], backbone))
    model = build_canet(blob["backbone"], int(blob["num_classes"]))
    load_weights(model, blob, path)
    meta = {k: v for k, v in blob.items() if k != "state_dict" and not k.startswith("train_state")}
    return model, meta


def backbone_mismatch(path: PathLike, found: str, asked: str) -> str:
    """Say that ``path`` holds a ``found`` model where ``asked`` was asked for, and the fix.

    The node's ``backbone`` parameter defaults to the bundled model's, so a user who gave
    only a checkpoint asked for it without knowing.
    """
    return (f"{path}: a checkpoint for the {found} backbone, not for {asked} as asked; ask "
            f"for {found} (the node's backbone:={found}, the command line's --backbone "
            f"{found})")


def load_weights(model: nn.Module, blob: Mapping[str, Any], path: PathLike) -> None:
    """Load a checkpoint's state_dict into ``model``; mismatches become CheckpointError."""
    state = blob["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: state_dict is not a mapping")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{path}: weights do not fit this architecture: "
                              f"{' '.join(first[:3])[:400]}") from exc


def class_set_from_metadata(meta: Mapping[str, Any], path: Optional[PathLike] = None
                            ) -> ClassSet:
    """Return the classes of checkpoint metadata; ``path`` names the file in an error.

    Metadata cached with an ONNX export by an older canet_ros was never checked for an
    ignore id among the classes, so that check is made here as well.
    """
    from .classes import ClassSet

    _check_ignore(path, meta)

    return ClassSet(str(meta.get("class_set", "custom")), tuple(meta["class_names"]),
                    tuple(tuple(int(v) for v in c) for c in meta["palette"]),
                    int(meta["ignore_index"]))

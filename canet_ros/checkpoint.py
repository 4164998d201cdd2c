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

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from .atomic_write import WriteError, write_atomic  # noqa: F401 (what it raises)
from .checkpoint_checks import (  # noqa: F401 (LOAD_CHECKS: read from here)
    FORMAT,
    FORMAT_VERSION,
    LOAD_CHECKS,
    CheckpointError,
    PathLike,
    check_finite,
    check_ignore,
    check_metadata,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .classes import ClassSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "canet_mobilenetv2_camvid.pt"
# torch.save's legacy (non-zip) format opens with a pickled magic number (LONG1, 10 bytes).
_LEGACY_MAGIC = b"\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"


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


def file_kind(path: Path) -> str:
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


def is_torch_file(path: Path) -> bool:
    """Return whether ``path`` reads as a whole torch.save file (False where unreadable)."""
    try:
        return file_kind(path) == "torch"
    except OSError:
        return False


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
        kind = file_kind(path)
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


def read_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu"
                    ) -> Dict[str, Any]:
    """Load and validate the raw dict (weights_only=True)."""
    path = resolve_checkpoint(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    blob = _torch_load(path, map_location)
    check_metadata(path, blob)
    check_finite(path, blob)
    return blob


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

    check_ignore(path, meta)

    return ClassSet(str(meta.get("class_set", "custom")), tuple(meta["class_names"]),
                    tuple(tuple(int(v) for v in c) for c in meta["palette"]),
                    int(meta["ignore_index"]))

"""The one checkpoint format: a state_dict plus everything needed to run it.

Files are plain dicts of tensors, strings, numbers and lists, so they load with
``torch.load(..., weights_only=True)`` and nothing else. Writes are atomic.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .classes import ClassSet
from .models import BACKBONES, build_canet

FORMAT = "canet_ros.checkpoint"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "canet_mobilenetv2_camvid.pt"
_REQUIRED = ("format", "format_version", "backbone", "num_classes", "class_names", "palette",
             "ignore_index", "mean", "std", "state_dict")

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def _plain(value: Any) -> Any:
    """Reduce config values to types weights_only unpickling accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "item") and getattr(value, "size", 2) == 1:  # numpy scalars
        return value.item()
    return str(value)


def build_metadata(backbone: str, class_set: ClassSet, *, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD,
                   input_size: Optional[Tuple[int, int]] = None,
                   train_args: Optional[Mapping[str, Any]] = None,
                   metrics: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Checkpoint metadata; ``input_size`` is the training input (width, height)."""
    return {
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


def save_checkpoint(path: PathLike, model: nn.Module, metadata: Mapping[str, Any], *,
                    half: bool = False, extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Write atomically (temp file in the same folder, then rename).

    ``half`` stores floating tensors as fp16 (for shipping); ``extra`` adds
    resumable training state (optimiser, scheduler, RNG) under its own keys.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    blob = dict(metadata)
    blob["state_dict"] = state
    if extra:
        blob.update(extra)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        # mkstemp makes the file owner-only; a checkpoint gets ordinary file permissions.
        os.chmod(tmp, 0o666 & ~umask)
        torch.save(blob, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def resolve_checkpoint(spec: Optional[PathLike]) -> Path:
    """``None`` or ``"default"`` -> the bundled model; anything else is a path."""
    if spec is None or str(spec) in ("", "default"):
        if not DEFAULT_CHECKPOINT.is_file():
            raise CheckpointError(f"{DEFAULT_CHECKPOINT}: the bundled default model is missing "
                                  "from this installation")
        return DEFAULT_CHECKPOINT
    return Path(spec).expanduser()


def read_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu"
                    ) -> Dict[str, Any]:
    """Load and validate the raw dict (weights_only=True)."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({exc})") from exc
    except Exception as exc:  # weights_only refuses arbitrary pickles with UnpicklingError
        raise CheckpointError(f"{path}: not a canet_ros checkpoint ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a canet_ros checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in _REQUIRED if k not in blob]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if blob["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {blob['format_version']} is newer than "
                              f"this canet_ros supports ({FORMAT_VERSION})")
    if blob["backbone"] not in BACKBONES:
        raise CheckpointError(f"{path}: unknown backbone {blob['backbone']!r}")
    return blob


def load_checkpoint(path: PathLike, *, backbone: Optional[str] = None,
                    map_location: Union[str, torch.device] = "cpu"
                    ) -> Tuple[nn.Module, Dict[str, Any]]:
    """Build the model a checkpoint describes and load its weights; returns (model, metadata).

    ``backbone``, when given, must match the checkpoint's.
    """
    blob = read_checkpoint(path, map_location)
    path = resolve_checkpoint(path)
    if backbone is not None and backbone != blob["backbone"]:
        raise CheckpointError(f"{path}: checkpoint is a {blob['backbone']} CANet, "
                              f"but backbone {backbone!r} was asked for")
    model = build_canet(blob["backbone"], int(blob["num_classes"]))
    load_weights(model, blob, path)
    meta = {k: v for k, v in blob.items() if k != "state_dict" and not k.startswith("train_state")}
    return model, meta


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


def class_set_from_metadata(meta: Mapping[str, Any]) -> ClassSet:
    return ClassSet(str(meta.get("class_set", "custom")), tuple(meta["class_names"]),
                    tuple(tuple(int(v) for v in c) for c in meta["palette"]),
                    int(meta["ignore_index"]))

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

"""Run a CANet with ONNX Runtime on the CPU: export once, cache, bind buffers once.

The weights are exported with a fixed 1x3xHxW input (fixed shapes let ORT fold every
size computation). Exports are cached under ``$CANET_ROS_CACHE`` (default
``$XDG_CACHE_HOME/canet_ros`` or ``~/.cache/canet_ros``) in ``onnx/``:

* for a checkpoint file, keyed by a hash of the file's bytes and the network size, with
  the checkpoint's metadata beside it (``<hash>.json``): a later start needs neither
  torch nor the checkpoint's unpickling, only this module, numpy and ONNX Runtime;
* for a model in memory (no file), keyed by a hash of its tensors and the size.

Caching is best-effort: where the folder cannot be written, or cannot even be named (no
home directory and neither variable set: a uid without a passwd entry, ``docker --user``),
every start exports again and says so once; nothing fails for want of a cache. Files get
ordinary permissions (the umask's), so users sharing one ``$CANET_ROS_CACHE`` read each
other's exports.

Only torch-free code runs at import; exporting imports torch.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import io
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic_write import remove_old_temps, write_atomic
from ..checkpoint import LOAD_CHECKS
from ..versions import import_optional
from ..warning_filters import PROCESS_LOCK, quiet_warnings

if TYPE_CHECKING:
    from torch import nn

__all__ = ["EXPORT_LOCK", "CachedGraph", "OnnxRunner", "cache_dir", "cached_graph",
           "export_onnx", "file_digest", "model_fingerprint", "onnxruntime_available",
           "quiet_warnings", "runtime_imports", "store_graph", "torchscript_export_options"]

log = logging.getLogger("canet_ros.inference")
OPSET = 17
# Part of every cache key: raise it when the exported graph changes for the same weights,
# or when entries made before may be wrong (3: before it, a checkpoint replaced while it
# was exported had the old weights' export filed under the new file's hash).
GRAPH_VERSION = 3
_META_KEYS = ("backbone", "num_classes", "class_set", "class_names", "palette",
              "ignore_index", "mean", "std", "input_size")
# torch.onnx.export keeps process-wide state (GLOBALS.in_onnx_export, the opset, the
# graph being built): two exports at once, engines or nodes built in threads, break each
# other's graphs. Exports run under the package's one warnings lock (re-entrant: an
# export may load), whose quiet_warnings they use too.
EXPORT_LOCK = PROCESS_LOCK


def onnxruntime_available() -> bool:
    """Return whether ONNX Runtime imports; installed but broken counts as absent."""
    return runtime_imports("onnxruntime", "ONNX Runtime")


# Why an optional runtime failed to import, once it has: a failed import leaves nothing in
# sys.modules, so each check would run (and log) the whole failing import again.
_BROKEN: dict[str, str] = {}


def runtime_imports(module: str, label: str) -> bool:
    """Return whether the optional runtime ``module`` imports; any failure means no.

    Not installed is said nowhere (an optional extra); installed but failing (a missing
    library, OpenVINO's telemetry raising RuntimeError without a home directory) is
    logged once, and the CPU path runs on what remains.
    """
    if module in _BROKEN:
        return False
    found, problem = import_optional(module, label)
    if problem is None:
        return found is not None
    _BROKEN[module] = problem
    log.warning("%s; running without it", problem)
    return False


def cache_dir() -> Path | None:
    """Return the cache folder, or None where none can be named (no home directory)."""
    root = os.environ.get("CANET_ROS_CACHE")
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        if root:
            return Path(root).expanduser()
        return (Path(xdg) if xdg else Path.home() / ".cache") / "canet_ros"
    except RuntimeError as exc:  # pathlib's "Could not determine home directory."
        _say_no_cache(str(exc))
        return None


@functools.lru_cache(maxsize=1)
def _say_no_cache(reason: str) -> None:
    # Once per process: every lookup and store asks, and each would repeat it.
    log.info("no cache folder (%s); ONNX exports are not cached, so every start exports "
             "again: set CANET_ROS_CACHE to a writable folder", reason)


def writable_parent(folder: Path) -> Path | None:
    """Return ``folder`` or its nearest existing parent where this process may make it, else None.

    What a write there (the export, the int8 graph) would need: the missing folders are made.
    """
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    return existing if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK) else None


def _onnx_dir() -> Path | None:
    root = cache_dir()
    return None if root is None else root / "onnx"


# Set by the first cache write that failed: its note is said once per process, not at
# each export (the fp32 graph, its metadata, the int8 graph) of each engine.
_UNWRITABLE: list[Path] = []
_UNWRITABLE_LOCK = threading.Lock()


# A killed write leaves its temp file (up to a whole export); the folder is shared by
# processes whose writes take seconds, so one untouched for an hour is a dead write's.
_STALE_TEMP_S = 3600.0
_TEMP_TARGETS = (".onnx", ".json")


def _remove_dead_temps(folder: Path) -> None:
    for path in remove_old_temps(folder, _TEMP_TARGETS, _STALE_TEMP_S):
        log.debug("removed %s, left by a write that was killed", path)


@functools.lru_cache(maxsize=8)
def _remove_dead_temps_once(folder: Path) -> None:
    # Per process at look-up: a cached start may never store again, and must still sweep.
    _remove_dead_temps(folder)


def _write_atomic(path: Path, data: bytes) -> None:
    _remove_dead_temps(path.parent)
    try:
        write_atomic(path, lambda fh: fh.write(data), needed=len(data))
    except OSError as exc:  # read-only cache, full disk: the in-memory graph still works
        with _UNWRITABLE_LOCK:
            first = not _UNWRITABLE
            if first:
                _UNWRITABLE.append(path)
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        reason = cause.strerror or str(exc)
        if not first:
            log.debug("cannot cache %s: %s", path, reason)
            return
        log.warning("cannot cache ONNX exports in %s (%s): every start exports them again, "
                    "with torch loaded (over 0.5 GB of memory for the process's life); "
                    "set CANET_ROS_CACHE to a writable folder with free space",
                    path.parent, reason)


# -- checkpoint files ---------------------------------------------------------------------
def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex, 32 characters): any edit gives another key."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class CachedGraph:
    """A cached export of one checkpoint file at one network size."""

    digest: str
    metadata: dict[str, Any]  # the checkpoint's metadata (no weights)
    size: tuple[int, int]     # (W, H)
    path: Path                # the .onnx file


def _graph_path(folder: Path, digest: str, size: tuple[int, int]) -> Path:
    return folder / f"{digest}_{size[0]}x{size[1]}_g{GRAPH_VERSION}_op{OPSET}.onnx"


def cached_graph(digest: str, size: tuple[int, int] | None) -> CachedGraph | None:
    """Return the cached export for a checkpoint (by :func:`file_digest`), or None.

    ``size`` None means the checkpoint's training size (else the default, 1024x512).
    """
    folder = _onnx_dir()
    if folder is None:
        return None
    _remove_dead_temps_once(folder)
    try:
        metadata = json.loads((folder / f"{digest}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(metadata, dict) or any(k not in metadata for k in _META_KEYS):
        return None
    if metadata.get("load_checks") != LOAD_CHECKS:
        return None  # stored before read_checkpoint's latest refusal: read the file again
    if size is None:
        from .preprocess import DEFAULT_RESOLUTION

        size = tuple(metadata["input_size"] or DEFAULT_RESOLUTION)
    path = _graph_path(folder, digest, size)
    metadata = {k: metadata[k] for k in _META_KEYS}
    return CachedGraph(digest, metadata, size, path) if path.is_file() else None


def store_graph(digest: str, metadata: dict[str, Any], size: tuple[int, int],
                data: bytes) -> None:
    """Cache ``data`` (an export of the checkpoint ``digest`` at ``size``) and its metadata."""
    folder = _onnx_dir()
    if folder is None:
        return
    _write_atomic(_graph_path(folder, digest, size), data)
    plain = {k: metadata.get(k) for k in _META_KEYS}
    plain["input_size"] = list(plain["input_size"]) if plain["input_size"] else None
    plain["load_checks"] = LOAD_CHECKS
    _write_atomic(folder / f"{digest}.json", json.dumps(plain).encode())


# -- models in memory ---------------------------------------------------------------------
def model_fingerprint(model: nn.Module, size: tuple[int, int]) -> str:
    """Hash of every tensor in the state_dict plus what else shapes the exported graph."""
    import torch

    digest = hashlib.sha256()
    digest.update(f"{size[0]}x{size[1]}|opset{OPSET}|g{GRAPH_VERSION}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def torchscript_export_options() -> dict[str, Any]:
    """Keyword arguments that make ``torch.onnx.export`` use its TorchScript exporter.

    torch 2.5 added ``dynamo`` (and from 2.9 it defaults to True); before 2.5 the
    TorchScript exporter is the only one and the keyword is a TypeError, so it is passed
    only where the signature has it.
    """
    import torch.onnx

    try:
        names = inspect.signature(torch.onnx.export).parameters
    except (TypeError, ValueError):  # no signature to read: assume a modern torch
        return {"dynamo": False}
    return {"dynamo": False} if "dynamo" in names else {}


def _export_bytes(model: nn.Module, size: tuple[int, int]) -> bytes:
    import torch

    width, height = size
    buffer = io.BytesIO()
    example = torch.zeros(1, 3, height, width)
    # The TorchScript-based exporter warns that it is deprecated; it is the one that
    # needs no extra packages and handles this model.
    with quiet_warnings(), torch.no_grad():
        torch.onnx.export(model, (example,), buffer, input_names=["input"],
                          output_names=["logits"], opset_version=OPSET,
                          **torchscript_export_options())
    return buffer.getvalue()


def export_onnx(model: nn.Module, size: tuple[int, int], use_cache: bool = True,
                refresh: bool = False) -> bytes:
    """ONNX bytes of ``model`` (fp32, CPU, eval) at network ``size`` (W, H), cached on disk.

    ``refresh`` exports again and replaces the cached file (one found unusable). Threads
    export one at a time; one waiting for the same graph then reads it from the cache.
    """
    folder = _onnx_dir() if use_cache else None
    path = None if folder is None else folder / f"canet_{model_fingerprint(model, size)}.onnx"
    with EXPORT_LOCK:
        return _cached_or_exported(model, size, path, refresh)


def _cached_or_exported(model: nn.Module, size: tuple[int, int], path: Path | None,
                        refresh: bool) -> bytes:
    if path is not None and not refresh and path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:  # another user's file we may not read: export again
            log.debug("cannot read the cached %s: %s", path, exc)
        else:
            log.debug("ONNX graph from cache %s", path)
            return data
    data = _export_bytes(model, size)
    if path is not None:
        _write_atomic(path, data)
    return data


class OnnxRunner:
    """One ORT session with its input and output buffers bound once.

    ``forward_numpy`` returns the bound output buffer itself: it is overwritten by the
    next call, which the engine's synchronous CPU path never overlaps. ``precision``
    says what the graph is: "fp32", or "int8" for a quantized (QDQ) graph.
    """

    runtime = "onnxruntime"

    def __init__(self, onnx_model: bytes | Path, size: tuple[int, int], num_classes: int,
                 threads: int | None = None, precision: str = "fp32"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        # Spinning workers would burn the cores other ROS nodes need, for no gain here.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = str(onnx_model) if isinstance(onnx_model, Path) else onnx_model
        self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        self.precision = precision
        width, height = size
        self.input = np.zeros((1, 3, height, width), np.float32)
        self.output = np.zeros((1, num_classes, height, width), np.float32)
        shape = self.session.get_outputs()[0].shape
        if list(shape) != list(self.output.shape):
            raise ValueError(f"ONNX graph gives logits {shape}, expected {list(self.output.shape)}")
        self._binding = self.session.io_binding()
        self._binding.bind_output("logits", "cpu", 0, np.float32, list(self.output.shape),
                                  self.output.ctypes.data)

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """(1,3,H,W) float32 -> (1,C,H,W) float32 logits (the bound output buffer)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.input.shape:
            raise ValueError(f"ONNX graph expects {self.input.shape}, got {x.shape}")
        self._binding.bind_cpu_input("input", x)
        self.session.run_with_iobinding(self._binding)
        return self.output

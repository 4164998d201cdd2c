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

"""SegmentationEngine: uint8 frames in, label maps (and optional visualisations) out.

* CPU (``cpu_path.CpuFramePath``): the cached ONNX export, run by ONNX Runtime or
  OpenVINO as ``cpu_runners`` picks for the precision (torch not imported), else torch
  channels_last; numpy/OpenCV pre- and post-processing, numba's loops (``kernels``)
  where installed.
* CUDA (``torch_backend.DevicePath``): pinned staging buffers per frame shape, two in turn
  over upload / compute / download streams, the frame path on the GPU, CUDA events only.

Both make outputs at the frame's size without upsampling all the logits (``upsample``;
OpenVINO: ``lowres``). Nothing here imports ROS, nor torch at import time.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checkpoint import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointError,
    PathLike,
    backbone_mismatch,
    class_set_from_metadata,
    is_torch_file,
    resolve_checkpoint,
)
from ..class_colors import ClassColors, apply_class_colors, read_class_colors
from ..classes import ClassSet
from . import image_loops, kernels
from . import postprocess as post
from . import preprocess as pre
from . import upsample as up
from .cpu_path import CpuFramePath, asked_outputs
from .cpu_runners import make_cpu_runner, runtime_for
from .onnx_runtime import cached_graph, file_digest
from .results import (
    Done,
    EngineError,
    Placed,
    Request,
    SegmentationResult,
    StageClock,
    check_alpha,
    choose,
    cpu_name,
    no_gpu_present,
    place,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .runners import InferenceHandle

__all__ = ["EngineError", "SegmentationEngine", "SegmentationResult"]

log = logging.getLogger("canet_ros.inference")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "auto")  # all but fp16: CPU (cpu_runners)
MAX_GRIDS = 4  # cell tables kept (a camera needs one or two; more cover switching)


class SegmentationEngine(CpuFramePath):
    """CANet inference (contract: docs/interfaces.md; speed: docs/performance.md).

    ``checkpoint`` None with ``backbone`` builds an untrained model for ``class_set``.
    ``resolution`` is the network input (W, H) or "WxH" (default: the checkpoint's
    input_size, else 1024x512); labels come out at the frame's size
    (``output_size="input"``) or at the network's. ``runtime`` matters on the CPU only.
    ``cuda_graph`` (an addition to the contract) replays the forward as a CUDA graph;
    like the memory-format choice it happens during ``warmup``. ``tta`` (offline tools
    only, never the node) also runs the mirrored frame and averages the two softmaxes:
    twice the model time. ``class_colors``: :meth:`set_class_colors` before the warm-up.
    ``export_in_child``: a CPU start that would run from the export cache but finds no
    entry makes it in a child process (``export_child``), so this one stays torch-free.
    """

    def __init__(self, checkpoint: PathLike | None = "default", *, backbone: str | None = None,
                 class_set: str | ClassSet = "camvid", device: str = "auto",
                 precision: str = "fp32", resolution: tuple[int, int] | str | None = None,
                 output_size: str = "input", overlay_alpha: float = 0.5, warmup: bool = True,
                 runtime: str = "auto", cuda_graph: bool = True, tta: bool = False,
                 class_colors: PathLike | ClassColors | None = None,
                 export_in_child: bool = False):
        self.precision = choose(precision, PRECISIONS, "precision")
        self.tta = bool(tta)
        self.output_size = choose(output_size, ("input", "network"), "output_size")
        runtime = choose(runtime, ("auto", "torch", "onnxruntime"), "runtime")
        self.overlay_alpha = overlay_alpha
        try:
            resolution = None if resolution is None else pre.parse_resolution(resolution)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        self._lock = threading.RLock()
        self._grids = up.GridCache(MAX_GRIDS)
        self._model: nn.Module | None = None
        self._device: torch.device | None = None
        self._pipeline: Any = None  # CudaPipeline, with _device_path; both None on the CPU
        self._device_path: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self.checkpoint_path: Path | None = None
        self.checkpoint_digest: str | None = None  # SHA-256 (32 hex), if a cached start hashed it
        if not self._torch_free(checkpoint, backbone, device, runtime, resolution,
                                export_in_child):
            self._from_torch(checkpoint, backbone, class_set, device, runtime, resolution,
                             cuda_graph)
        if class_colors is not None:
            self.set_class_colors(class_colors)
        if warmup:
            self._warmup()

    # -- construction -------------------------------------------------------------------
    def _torch_free(self, checkpoint: PathLike | None, backbone: str | None, device: str,
                    runtime: str, resolution: tuple[int, int] | None, in_child: bool) -> bool:
        """Build from the cached export (made by a child first if ``in_child``); False: torch."""
        spec = str(device).strip().lower()
        if (checkpoint is None or self.precision == "fp16" or runtime == "torch"
                or not (spec == "cpu" or (spec == "auto" and no_gpu_present()))
                or runtime_for("fp32", runtime) is None):
            return False
        try:
            path = resolve_checkpoint(checkpoint)
            if not path.is_file():
                return False
        except (CheckpointError, OSError):
            return False  # the torch path reports it in full
        if self._from_cache(path, backbone, runtime, resolution):
            return True
        if not is_torch_file(path):
            return False  # the torch path says what the file is, with no line before it
        from . import export_child as child

        if not child.say_exporting(path, resolution, self.precision, runtime):
            return False
        if in_child and child.worth_a_child(path) and child.export_in_child(
                path, backbone, self.precision, runtime, resolution):
            if self._from_cache(path, backbone, runtime, resolution):
                return True
            log.debug("the child process left no usable cache entry; exporting here")
        return False

    def _from_cache(self, path: Path, backbone: str | None, runtime: str,
                    resolution: tuple[int, int] | None) -> bool:
        """Run the cached export on ORT or OpenVINO (both read .onnx), without torch, if cached."""
        try:
            digest = file_digest(path)
            entry = cached_graph(digest, resolution)
        except OSError:
            return False  # the torch path reports it in full
        if entry is None:
            return False
        meta = entry.metadata
        if backbone is not None and backbone != meta["backbone"]:
            raise EngineError(backbone_mismatch(path, meta["backbone"], backbone))
        self._describe(meta, class_set_from_metadata(meta, path), path, entry.size)
        try:
            runner = make_cpu_runner(entry.path, entry.size, self.num_classes, self.precision,
                                     runtime, lambda frame: self._pre(frame, "rgb"))
        except EngineError:  # a precision this CPU or install cannot run
            raise
        except Exception as exc:  # a damaged cache file: export again (the torch path)
            log.warning("cached ONNX export %s unusable (%s); exporting again", entry.path, exc)
            return False
        self.device_type, self.device_name, self.runtime = "cpu", cpu_name(), runner.runtime
        self.precision = runner.precision
        self._runner, self.checkpoint_digest = runner, digest
        log.debug("engine from the cached ONNX export %s (torch not loaded)", entry.path)
        return True

    def _from_torch(self, checkpoint: PathLike | None, backbone: str | None,
                    class_set: str | ClassSet, device: str, runtime: str,
                    resolution: tuple[int, int] | None, cuda_graph: bool) -> None:
        from . import torch_backend as tb  # lazy: torch stays out of cached CPU starts

        loaded = tb.load(checkpoint, backbone, class_set, device, self.precision, runtime,
                         resolution)
        self.device_type, self.device_name = loaded.device.type, loaded.device_name
        self._describe(loaded.meta, loaded.classes, loaded.path, loaded.size)
        if loaded.device.type == "cuda":
            runner = tb.cuda_runner(loaded)
            self._device_path = self._make_device_path(runner, cuda_graph)
            self._pipeline = self._device_path.pipeline(self._lock)
        else:
            runner = tb.cpu_runner(loaded, runtime, lambda frame: self._pre(frame, "rgb"))
        self.runtime, self.precision = runner.runtime, runner.precision
        self._runner, self._model, self._device = runner, loaded.model, loaded.device

    def _make_device_path(self, runner: Any, cuda_graph: bool = False) -> Any:
        """Return the CUDA frame path over this engine's tables (tests run it on the CPU)."""
        from .torch_backend import DevicePath

        return DevicePath(runner, self.resolution, self._mean, self._std, self._palette,
                          self.label_dtype, tta=self.tta, out_hw=self.out_hw, grid=self.grid,
                          cuda_graph=cuda_graph)

    def _describe(self, meta: dict[str, Any], classes: ClassSet, path: Path | None,
                  resolution: tuple[int, int]) -> None:
        """Record what the model is; set up the tables every path uses."""
        self.backbone = str(meta["backbone"])
        self.class_set, self.num_classes = classes, classes.num_classes
        if len(classes.colors) != classes.num_classes:
            raise EngineError(f"{path}: metadata describes {classes.num_classes} classes but "
                              f"{len(classes.colors)} colours")
        self.checkpoint_path, self.resolution = path, resolution
        self._mean = tuple(meta.get("mean") or IMAGENET_MEAN)
        self._std = tuple(meta.get("std") or IMAGENET_STD)
        try:
            self.label_dtype = post.label_dtype(self.num_classes)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        self._palette = classes.palette()[: self.num_classes]
        self._packed = up.pack_palette(self._palette)
        self._pre = pre.Preprocessor(resolution, self._mean, self._std)

    def _warmup(self) -> None:
        width, height = self.resolution
        frame = np.zeros((height, width, 3), np.uint8)
        if self._device_path is not None:
            self._device_path.prepare(self.prepare_model_input)
            for _ in range(2):  # both of the frame shape's pinned slots
                self.infer(frame, color=True, overlay=True, confidence=True)
            return
        kernels.say_if_compiling()
        self.infer(frame, color=True, overlay=True, confidence=True)
        if kernels.available():  # the camera-size loops compile (or load) now, not on frame 1
            self.infer(np.zeros((height + 8, width + 8, 3), np.uint8), color=True, overlay=True,
                       confidence=True)
            image_loops.warm_up()
        elif getattr(self._runner, "lowres", False):  # frames without confidence go that way
            self.infer(frame, color=True, overlay=True)

    # -- properties -------------------------------------------------------------------
    @property
    def overlay_alpha(self) -> float:
        return self._alpha

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        self._alpha = check_alpha(value)

    @property
    def device(self) -> torch.device:
        """Return the torch device; torch is imported if the engine was built without it."""
        if self._device is None:
            import torch

            self._device = torch.device(self.device_type)
        return self._device

    @property
    def model(self) -> nn.Module:
        """Return the torch module; an engine from the ONNX cache loads it on first use."""
        if self._model is None:
            from .torch_backend import load_model

            self._model = load_model(self.checkpoint_path, self.backbone)
        return self._model

    @property
    def precision_label(self) -> str:
        """Say what runs, e.g. "int8 on openvino" (``precision`` "auto" resolved), for logs."""
        return f"{self.precision} on {self.runtime}"

    def set_class_colors(self, colors: PathLike | ClassColors | ClassSet) -> None:
        """Draw colour, overlay (and what reads ``class_set``) in other class colours from now.

        ``colors``: a class colours file or its :func:`read_class_colors`, applied to this
        model's classes (ClassColorsError names the file and the problem), or a ClassSet
        with this model's names. Frames already submitted keep the colours they started with.
        """
        if not isinstance(colors, ClassSet):
            colors = apply_class_colors(self.class_set, colors if isinstance(
                colors, ClassColors) else read_class_colors(colors))
        palette = colors.palette()
        if (colors.names, colors.ignore_index, palette.shape) != (
                self.class_set.names, self.class_set.ignore_index, self._palette.shape):
            raise EngineError(f"class set {colors.name!r} is not this model's classes")
        with self._lock:
            if self._device_path is not None:
                self._device_path.set_palette(palette)
            self.class_set, self._palette = colors, palette
            self._packed = up.pack_palette(palette)

    # -- benchmarking hooks -------------------------------------------------------------
    def prepare_model_input(self, frame: np.ndarray | None = None) -> Any:
        """Return a normalised network input in the runner's format (zeros without a frame)."""
        width, height = self.resolution
        frame = np.zeros((height, width, 3), np.uint8) if frame is None else frame
        x = self._pre(pre.check_frame(frame), "rgb", np.zeros((1, 3, height, width), np.float32))
        if self._pipeline is None:
            return x
        import torch

        return self._runner.format_input(torch.from_numpy(x))

    def run_model(self, x: Any) -> Any:
        """One forward on a :meth:`prepare_model_input` value; asynchronous on CUDA."""
        if self._pipeline is not None:
            import torch

            with torch.cuda.device(self.device):
                return self._runner.forward(x)
        return self._runner.forward_numpy(x)

    def infer_timed(self, frame: np.ndarray, order: str = "rgb", **flags: Any
                    ) -> tuple[SegmentationResult, dict[str, float]]:
        """Run :meth:`infer` and time each stage in ms (``results.STAGES``).

        On CUDA the times are device times from events, plus ``download``.
        """
        clock = self._pipeline.clock() if self._pipeline is not None else StageClock()
        result = self.infer_async(frame, order, clock=clock, **flags).result()
        return result, clock.result()

    # -- inference ----------------------------------------------------------------------
    def infer(self, frame: np.ndarray, order: str = "rgb", *, color: bool = False,
              overlay: bool = False, confidence: bool = False, alpha: float | None = None,
              into: Mapping[str, np.ndarray] | None = None) -> SegmentationResult:
        """Segment one HxWx3 uint8 frame whose channels are in ``order``.

        ``into``: arrays for outputs by name ("labels", "color", ...), e.g. messages'
        buffers (``image_codec.image_buffer``); the CPU path writes there in place.
        """
        return self.infer_async(frame, order, color=color, overlay=overlay,
                                confidence=confidence, alpha=alpha, into=into).result()

    def infer_async(self, frame: np.ndarray, order: str = "rgb", *, color: bool = False,
                    overlay: bool = False, confidence: bool = False,
                    alpha: float | None = None, clock: StageClock | None = None,
                    into: Mapping[str, np.ndarray] | None = None
                    ) -> InferenceHandle | Done | Placed:
        """Submit a frame; on CUDA this returns before the GPU is done (call ``result()``).

        Two frames may be in flight per frame shape; submitting a third first collects
        the oldest. On the CPU the work is done before this returns.
        """
        try:
            frame = pre.check_frame(frame)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        req = Request(choose(order, ("rgb", "bgr"), "channel order"), bool(color),
                      bool(overlay), bool(confidence),
                      self._alpha if alpha is None else check_alpha(alpha))
        asked = asked_outputs(into, req)
        with self._lock:
            if self._pipeline is not None:
                handle = self._pipeline.submit(frame, req, self.label_dtype, clock)
                return Placed(handle, into) if into else handle
            return Done(place(self._infer_cpu(frame, req, clock, asked), into))

    def infer_many(self, frames: Iterable[np.ndarray], order: str = "rgb",
                   **kwargs: Any) -> Iterator[SegmentationResult]:
        """Yield results in order (CUDA: one frame in flight); ``into`` holds each till the next."""
        pending = None
        for frame in frames:
            handle = self.infer_async(frame, order, **kwargs)
            if self._pipeline is None:  # finished (and in ``into``): the next must wait
                yield handle.result()
                continue
            if pending is not None:
                yield pending.result()
            pending = handle
        if pending is not None:
            yield pending.result()

    def out_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """Output (H, W) for a frame of ``frame_hw``."""
        width, height = self.resolution
        return tuple(frame_hw) if self.output_size == "input" else (height, width)

    def grid(self, out_hw: tuple[int, int], make: Any = None,
             in_hw: tuple[int, int] | None = None) -> Any:
        """Cell tables from network size (or ``in_hw``) to ``out_hw`` (None if the same)."""
        return self._grids.get(self.resolution[::-1] if in_hw is None else in_hw, out_hw, make)

    def __repr__(self) -> str:
        return (f"SegmentationEngine(backbone={self.backbone!r}, classes={self.num_classes}, "
                f"device={self.device_type!r}, runtime={self.runtime!r}, "
                f"precision={self.precision!r}, resolution={self.resolution}, tta={self.tta})")

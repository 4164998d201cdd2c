"""SegmentationEngine: uint8 frames in, label maps (and optional visualisations) out.

Two paths behind one API:

* CUDA: pinned staging buffers per frame shape, double-buffered over three streams
  (upload / compute / download) so that frame n+1's upload and frame n's download
  overlap frame n's compute; all pre/post-processing on the GPU; completion waited
  for with CUDA events only. At construction the model is warmed up, its memory
  format picked by timing, and (cuda_graph=True, the default) captured in a CUDA graph.
* CPU: ONNX Runtime (runtime="auto" when importable; measured faster than torch
  on this model) or torch channels_last, with numpy/OpenCV pre/post-processing.

Nothing here imports ROS.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointError,
    PathLike,
    class_set_from_metadata,
    load_checkpoint,
    resolve_checkpoint,
)
from ..classes import ClassSet, get_class_set
from ..models import BACKBONES, build_canet
from . import postprocess as post
from . import preprocess as pre
from .onnx_runtime import OnnxRunner, export_onnx, onnxruntime_available
from .results import EngineError, Request, SegmentationResult, cpu_name, resolve_device
from .runners import CudaPipeline, InferenceHandle, TorchRunner

__all__ = ["EngineError", "InferenceHandle", "SegmentationEngine", "SegmentationResult",
           "cpu_name", "resolve_device"]

log = logging.getLogger("canet_ros.inference")
_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


def _load_model(checkpoint: PathLike | None, backbone: str | None,
                class_set: str | ClassSet) -> tuple[nn.Module, dict, ClassSet, Path | None]:
    if checkpoint is None:
        if backbone not in BACKBONES:
            raise EngineError(f"an untrained model (checkpoint=None) needs backbone= one of "
                              f"{', '.join(BACKBONES)}; got {backbone!r}")
        try:
            classes = class_set if isinstance(class_set, ClassSet) else get_class_set(class_set)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        log.info("untrained %s CANet (random weights), %d classes", backbone,
                 classes.num_classes)
        meta = {"backbone": backbone, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        return build_canet(backbone, classes.num_classes), meta, classes, None
    try:
        path = resolve_checkpoint(checkpoint)
        model, meta = load_checkpoint(path, backbone=backbone)
        classes = class_set_from_metadata(meta)
    except CheckpointError as exc:
        raise EngineError(str(exc)) from exc
    if classes.num_classes != model.num_classes or len(classes.colors) != model.num_classes:
        raise EngineError(f"{path}: metadata describes {classes.num_classes} classes / "
                          f"{len(classes.colors)} colours for a {model.num_classes}-class model")
    return model.float(), meta, classes, path


def _choose(value: str, allowed: tuple[str, ...], what: str) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise EngineError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    return text


class SegmentationEngine:
    """CANet inference (contract: docs/interfaces.md; speed: docs/performance.md).

    ``checkpoint`` None with ``backbone`` builds an untrained model for ``class_set``.
    ``resolution`` is the network input (W, H) or "WxH" (default: the checkpoint's
    input_size, else 1024x512); labels come out at the frame's size
    (``output_size="input"``) or at the network's. ``runtime`` matters on the CPU only.
    ``cuda_graph`` (an addition to the contract) replays the forward as a CUDA graph;
    like the memory-format choice it happens during ``warmup``.
    """

    def __init__(self, checkpoint: PathLike | None = "default", *, backbone: str | None = None,
                 class_set: str | ClassSet = "camvid", device: str = "auto",
                 precision: str = "fp32", resolution: tuple[int, int] | str | None = None,
                 output_size: str = "input", overlay_alpha: float = 0.5, warmup: bool = True,
                 runtime: str = "auto", cuda_graph: bool = True):
        self.precision = _choose(precision, tuple(_PRECISIONS), "precision")
        self.output_size = _choose(output_size, ("input", "network"), "output_size")
        runtime = _choose(runtime, ("auto", "torch", "onnxruntime"), "runtime")
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        if self.precision == "fp16" and not cuda:
            raise EngineError("precision='fp16' needs a CUDA device; the CPU path runs fp32")
        if runtime == "onnxruntime" and cuda:
            raise EngineError("runtime='onnxruntime' is for the CPU; use runtime='torch' "
                              "(or 'auto') with CUDA")
        self.device_name = torch.cuda.get_device_name(self.device) if cuda else cpu_name()
        if str(device).strip().lower() == "auto":
            log.info("device=auto: running on %s (%s)", self.device, self.device_name)
        model, meta, self.class_set, self.checkpoint_path = _load_model(
            checkpoint, backbone, class_set)
        self.backbone = str(meta["backbone"])
        self.num_classes = self.class_set.num_classes
        try:
            size = resolution if resolution is not None else (
                meta.get("input_size") or pre.DEFAULT_RESOLUTION)
            self.resolution = pre.parse_resolution(size)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        self.overlay_alpha = overlay_alpha
        self._setup_tables(meta.get("mean", IMAGENET_MEAN), meta.get("std", IMAGENET_STD))
        self._lock = threading.RLock()
        self._model = model.eval().requires_grad_(False)
        self._pipeline: CudaPipeline | None = None
        if cuda:
            self._setup_cuda(cuda_graph)
        else:
            self._setup_cpu(runtime)
        if warmup:
            self._warmup()

    # -- properties -------------------------------------------------------------------
    @property
    def overlay_alpha(self) -> float:
        return self._alpha

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        self._alpha = self._check_alpha(value)

    @property
    def model(self) -> nn.Module:
        """The torch module (on the engine's device and precision for the torch runtime)."""
        return self._model

    @property
    def model_channels_last(self) -> bool:
        """Whether the torch model runs in channels_last (False for ONNX Runtime)."""
        return bool(getattr(self._runner, "channels_last", False))

    @staticmethod
    def _check_alpha(value: float) -> float:
        alpha = float(value)
        if not 0.0 <= alpha <= 1.0:
            raise EngineError(f"overlay alpha must be in [0, 1], got {value!r}")
        return alpha

    # -- construction -------------------------------------------------------------------
    def _setup_tables(self, mean: Any, std: Any) -> None:
        try:
            self._label_dtype = post.label_dtype(self.num_classes)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        self._palette = {"rgb": self.class_set.palette()[: self.num_classes]}
        self._palette["bgr"] = np.ascontiguousarray(self._palette["rgb"][:, ::-1])
        self._luts = {o: pre.normalisation_lut(mean, std, o) for o in ("rgb", "bgr")}
        self._affine = pre.normalisation_affine(mean, std)

    def _setup_cpu(self, runtime: str) -> None:
        width, height = self.resolution
        self._cpu_input = np.zeros((1, 3, height, width), np.float32)
        if runtime == "onnxruntime" and not onnxruntime_available():
            raise EngineError("runtime='onnxruntime' but the onnxruntime package is not installed")
        self.runtime = "onnxruntime" if runtime != "torch" and onnxruntime_available() else "torch"
        if self.runtime == "onnxruntime":
            try:
                data = export_onnx(self._model, self.resolution)
                self._runner: Any = OnnxRunner(data, self.resolution, self.num_classes)
                return
            except Exception as exc:  # an exporter or ORT problem: torch still runs the model
                if runtime == "onnxruntime":
                    raise EngineError(f"ONNX Runtime setup failed: {exc}") from exc
                log.warning("ONNX Runtime setup failed (%s); using torch on the CPU", exc)
                self.runtime = "torch"
        # channels_last measured 2x faster than NCHW for this net on x86 (docs/performance.md).
        self._runner = TorchRunner(self._model, self.device, torch.float32, channels_last=True)

    def _setup_cuda(self, cuda_graph: bool) -> None:
        self.runtime = "torch"
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotuned kernels pay off
        dtype = _PRECISIONS[self.precision]
        self._runner = TorchRunner(self._model, self.device, dtype, channels_last=True)
        self._setup_device_tables()
        self._pipeline = CudaPipeline(self.device, self._compute_torch, self._lock)
        self._cuda_graph = cuda_graph

    def _setup_device_tables(self) -> None:
        """Palettes and the normalisation on the model's device, for :meth:`_compute_torch`."""
        self._palette_t = {k: torch.from_numpy(v).to(self.device) for k, v in self._palette.items()}
        self._affine_t = tuple(t.to(self.device) for t in self._affine)
        # torch has no general uint16; int32 travels and becomes uint16 on the host.
        self._label_dtype_t = torch.uint8 if self._label_dtype == np.uint8 else torch.int32

    def _warmup(self) -> None:
        width, height = self.resolution
        if self._pipeline is not None:
            with torch.cuda.device(self.device):
                self._pick_memory_format()
                if self._cuda_graph:
                    x = self.prepare_model_input()
                    if self._runner.capture_graph(x):
                        log.info("CANet forward captured as a CUDA graph")
        frame = np.zeros((height, width, 3), np.uint8)
        for _ in range(2 if self._pipeline is not None else 1):
            self.infer(frame, color=True, overlay=True, confidence=True)

    def _pick_memory_format(self, iters: int = 10) -> None:
        """Time NCHW against channels_last on this GPU and keep the faster."""
        timings = {}
        for channels_last in (False, True):
            self._runner.set_channels_last(channels_last)
            x = self.prepare_model_input()
            for _ in range(3):
                self._runner.forward(x)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                self._runner.forward(x)
            end.record()
            end.synchronize()
            timings[channels_last] = start.elapsed_time(end) / iters
        best = min(timings, key=timings.get)
        self._runner.set_channels_last(best)
        log.info("memory format: %s (%.3f ms vs %.3f ms)", "channels_last" if best else "NCHW",
                 timings[best], timings[not best])

    # -- benchmarking hooks -------------------------------------------------------------
    def prepare_model_input(self, frame: np.ndarray | None = None) -> Any:
        """Return a normalised network input in the runner's format (zeros without a frame)."""
        width, height = self.resolution
        frame = np.zeros((height, width, 3), np.uint8) if frame is None else frame
        x = pre.preprocess_cpu(pre.check_frame(frame), self.resolution, self._luts["rgb"], "rgb",
                               np.zeros((1, 3, height, width), np.float32))
        return self._runner.format_input(torch.from_numpy(x)) if self._pipeline is not None else x

    def run_model(self, x: Any) -> Any:
        """One forward on a :meth:`prepare_model_input` value; asynchronous on CUDA."""
        if self._pipeline is not None:
            with torch.cuda.device(self.device):
                return self._runner.forward(x)
        return self._runner.forward_numpy(x)

    # -- inference ----------------------------------------------------------------------
    def infer(self, frame: np.ndarray, order: str = "rgb", *, color: bool = False,
              overlay: bool = False, confidence: bool = False,
              alpha: float | None = None) -> SegmentationResult:
        """Segment one HxWx3 uint8 frame whose channels are in ``order``."""
        return self.infer_async(frame, order, color=color, overlay=overlay,
                                confidence=confidence, alpha=alpha).result()

    def infer_async(self, frame: np.ndarray, order: str = "rgb", *, color: bool = False,
                    overlay: bool = False, confidence: bool = False,
                    alpha: float | None = None) -> InferenceHandle:
        """Submit a frame; on CUDA this returns before the GPU is done (call ``result()``).

        Two frames may be in flight per frame shape; submitting a third first collects
        the oldest. On the CPU the work is done before this returns.
        """
        try:
            frame = pre.check_frame(frame)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        req = Request(_choose(order, ("rgb", "bgr"), "channel order"), bool(color),
                      bool(overlay), bool(confidence),
                      self._alpha if alpha is None else self._check_alpha(alpha))
        with self._lock:
            if self._pipeline is not None:
                return self._pipeline.submit(frame, req, self._label_dtype)
            return InferenceHandle(self._infer_cpu(frame, req))

    def infer_many(self, frames: Iterable[np.ndarray], order: str = "rgb",
                   **kwargs: Any) -> Iterator[SegmentationResult]:
        """Results in order, keeping one frame in flight so transfers overlap compute."""
        pending: InferenceHandle | None = None
        for frame in frames:
            handle = self.infer_async(frame, order, **kwargs)
            if pending is not None:
                yield pending.result()
            pending = handle
        if pending is not None:
            yield pending.result()

    def _out_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        width, height = self.resolution
        return tuple(frame_hw) if self.output_size == "input" else (height, width)

    def _infer_cpu(self, frame: np.ndarray, req: Request) -> SegmentationResult:
        x = pre.preprocess_cpu(frame, self.resolution, self._luts[req.order], req.order,
                               self._cpu_input)
        logits = self._runner.forward_numpy(x)[0]
        out_hw = self._out_hw(frame.shape[:2])
        labels, conf = post.labels_cpu(logits, out_hw, self._label_dtype, req.confidence)
        color = post.colorize_cpu(labels, self._palette["rgb"]) if req.color else None
        overlay = None
        if req.overlay:
            base = frame if out_hw == frame.shape[:2] else pre.resize_frame_cpu(
                frame, self.resolution)
            tint = color if color is not None and req.order == "rgb" else post.colorize_cpu(
                labels, self._palette[req.order])
            overlay = post.blend_cpu(base, tint, req.alpha)
        return SegmentationResult(labels, color, overlay, conf)

    def _compute_torch(self, frame: torch.Tensor, req: Request) -> dict[str, torch.Tensor]:
        """Everything between the uploaded frame and the download, on the compute stream."""
        out_hw = self._out_hw(tuple(frame.shape[:2]))
        keep = req.overlay and out_hw != tuple(frame.shape[:2])
        x, resized = pre.preprocess_torch(frame, self.resolution, *self._affine_t, req.order,
                                          self._runner.dtype, self._runner.channels_last, keep)
        logits = post.upsample_logits_torch(self._runner.forward(x), out_hw)
        labels = logits.argmax(1)[0]
        outs = {"labels": labels.to(self._label_dtype_t)}
        if req.color:
            outs["color"] = post.colorize_torch(labels, self._palette_t["rgb"])
        if req.overlay:
            tint = post.colorize_torch(labels, self._palette_t[req.order])
            outs["overlay"] = post.blend_torch(frame if resized is None else resized, tint,
                                               req.alpha)
        if req.confidence:
            outs["confidence"] = post.confidence_torch(logits)
        return outs

    def __repr__(self) -> str:
        return (f"SegmentationEngine(backbone={self.backbone!r}, classes={self.num_classes}, "
                f"device={str(self.device)!r}, runtime={self.runtime!r}, "
                f"precision={self.precision!r}, resolution={self.resolution})")

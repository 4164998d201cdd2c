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

"""The engine's torch side: loading the model, the CPU runtimes' setup, the CUDA path.

Imported only when a torch model is needed: no cached ONNX export yet, ``runtime=
"torch"``, an untrained model, or a GPU.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from . import device_ops as dev
from . import preprocess as pre
from .cpu_runners import choose_precision, make_cpu_runner, runtime_for
from .onnx_runtime import (
    cached_graph,
    export_onnx,
    file_digest,
    onnxruntime_available,
    store_graph,
)
from .results import EngineError, Request, cpu_name, resolve_device
from .runners import CudaPipeline, TorchRunner

if TYPE_CHECKING:
    from .engine import SegmentationEngine
# That is the one arrow back to engine.py, and for type checking only: at run time the
# engine imports this module (lazily, to keep torch out of the start-up path) and hands
# itself to build()/compute(), which fill in its torch side; nothing here imports it.

log = logging.getLogger("canet_ros.inference")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def load_model(checkpoint: PathLike, backbone: str | None) -> nn.Module:
    """Return the checkpoint's model in fp32, eval mode, gradients off."""
    try:
        model, _ = load_checkpoint(checkpoint, backbone=backbone)
    except CheckpointError as exc:
        raise EngineError(str(exc)) from exc
    return model.float().eval().requires_grad_(False)


def _load(checkpoint: PathLike | None, backbone: str | None, class_set: str | ClassSet
          ) -> tuple[nn.Module, dict, ClassSet, Path | None]:
    from ..models import BACKBONES, build_canet

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
    if classes.num_classes != model.num_classes:
        raise EngineError(f"{path}: metadata describes {classes.num_classes} classes for a "
                          f"{model.num_classes}-class model")
    return model.float().eval().requires_grad_(False), meta, classes, path


def build(engine: SegmentationEngine, checkpoint: PathLike | None, backbone: str | None,
          class_set: str | ClassSet, device: str, runtime: str,
          resolution: tuple[int, int] | None, cuda_graph: bool) -> None:
    """Finish ``engine`` on the torch side (it has checked its plain arguments)."""
    device_t = resolve_device(device)
    cuda = device_t.type == "cuda"
    if engine.precision == "fp16" and not cuda:
        raise EngineError("precision='fp16' needs a CUDA device; the CPU path runs fp32, "
                          "bf16, int8 or auto")
    if cuda and engine.precision in ("bf16", "int8"):
        raise EngineError(f"precision={engine.precision!r} is for the CPU; CUDA runs fp32 or "
                          "fp16")
    if cuda and engine.precision == "auto":
        engine.precision = "fp32"  # CUDA's auto keeps fp32 (fp16 is asked for by name)
    if runtime == "onnxruntime" and cuda:
        raise EngineError("runtime='onnxruntime' is for the CPU; use runtime='torch' "
                          "(or 'auto') with CUDA")
    engine.device_type = device_t.type
    engine.device_name = torch.cuda.get_device_name(device_t) if cuda else cpu_name()
    model, meta, classes, path = _load(checkpoint, backbone, class_set)
    if str(device).strip().lower() == "auto":  # after the load: a bad file is one error line
        log.info("device=auto: running on %s (%s)", device_t, engine.device_name)
    try:
        size = resolution or pre.parse_resolution(meta.get("input_size")
                                                  or pre.DEFAULT_RESOLUTION)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    engine.describe(meta, classes, path, size)
    if cuda:
        _setup_cuda(engine, model, device_t, cuda_graph)
    else:
        _setup_cpu(engine, model, device_t, runtime, meta)


def _setup_cpu(engine: SegmentationEngine, model: nn.Module, device: torch.device,
               runtime: str, meta: dict) -> None:
    if runtime == "onnxruntime" and not onnxruntime_available():
        raise EngineError("runtime='onnxruntime' but the onnxruntime package is not installed")
    if runtime == "torch" and engine.precision not in ("fp32", "auto"):
        raise EngineError(f"precision={engine.precision!r} runs on ONNX Runtime or OpenVINO; "
                          "runtime='torch' runs fp32")
    engine.runtime = "torch"
    # A precision this CPU or install cannot run stops here, before any fallback.
    chosen = choose_precision(engine.precision, runtime) if runtime != "torch" else "fp32"
    # auto is resolved by the factory, which knows what is cached and falls back.
    asked = "auto" if engine.precision == "auto" else chosen
    if runtime != "torch" and runtime_for(chosen, runtime):
        try:
            data = _export(model, engine.resolution, engine.checkpoint_path, meta)
            runner = make_cpu_runner(data, engine.resolution, engine.num_classes, asked,
                                     runtime,
                                     lambda frame: engine._pre(frame, "rgb"))
            engine.runtime, engine.precision = runner.runtime, runner.precision
            engine.set_runner(runner, model, device)
            return
        except Exception as exc:  # an exporter or runtime problem: torch still runs fp32
            if chosen != "fp32" and asked != "auto":
                raise EngineError(f"{chosen} setup failed: {exc}") from exc
            if runtime == "onnxruntime":
                raise EngineError(f"ONNX Runtime setup failed: {exc}") from exc
            log.warning("ONNX Runtime setup failed (%s); using torch on the CPU", exc)
            engine.runtime = "torch"
    engine.precision = "fp32"
    # channels_last measured 2x faster than NCHW for this net on x86 (docs/performance.md).
    engine.set_runner(TorchRunner(model, device, torch.float32, channels_last=True), model,
                      device)


def _export(model: nn.Module, size: tuple[int, int], path: Path | None,
            meta: dict) -> Path | bytes:
    """Export; a checkpoint file's export is cached by the file's hash, for torch-free starts.

    The cached file is returned where there is one: the int8 graph is named after the file
    it was made from, so the next (cached) start finds the one this start makes.
    """
    if path is None:
        return export_onnx(model, size)
    data = export_onnx(model, size, use_cache=False)
    digest = file_digest(path)
    store_graph(digest, meta, size, data)
    entry = cached_graph(digest, size)
    return entry.path if entry is not None else data


def _setup_cuda(engine: SegmentationEngine, model: nn.Module, device: torch.device,
                cuda_graph: bool) -> None:
    engine.runtime = "torch"
    torch.backends.cudnn.benchmark = True  # fixed shapes: autotuned kernels pay off
    runner = TorchRunner(model, device, _DTYPES[engine.precision], channels_last=True)
    engine.set_runner(runner, model, device)
    setup_device_tables(engine)
    engine._pipeline = CudaPipeline(device, lambda frame, req, clock=None: compute(
        engine, frame, req, clock), engine._lock)
    engine._cuda_graph = cuda_graph


def setup_device_tables(engine: SegmentationEngine) -> None:
    """Put the CUDA path's tables on the engine's device (tests run ``compute`` on the CPU)."""
    device = engine.device
    engine._palette_t = {k: torch.from_numpy(v).to(device) for k, v in engine._palette.items()}
    affine = dev.normalisation_affine(engine._mean, engine._std)
    engine._affine_t = tuple(t.to(device) for t in affine)
    # torch has no general uint16; int32 travels and becomes uint16 on the host.
    engine._label_dtype_t = torch.uint8 if engine.label_dtype == np.uint8 else torch.int32


def compute(engine: SegmentationEngine, frame: torch.Tensor, req: Request,
            clock: Any = None) -> dict[str, torch.Tensor]:
    """Everything between the uploaded frame and the download, on the current stream."""
    mark = clock.mark if clock is not None else (lambda stage: None)
    runner = engine._runner
    out_hw = engine.out_hw(tuple(frame.shape[:2]))
    x, small = dev.preprocess(frame, engine.resolution, *engine._affine_t, req.order,
                              runner.dtype, runner.channels_last)
    mark("preprocess")
    logits = runner.forward(x)
    if engine.tta:  # a graph replay reuses its output: take the first before the second
        logits = dev.flip_tta_logits(logits.float().clone(), runner.forward(x.flip(-1)))
    mark("model")
    grid = engine.grid(out_hw, lambda cells: dev.DeviceGrid(cells, frame.device))
    labels, small_labels, mixed = dev.labels(grid, logits)
    outs = {"labels": labels.to(engine._label_dtype_t)}
    mark("upsample_argmax")
    colours = None
    if req.color or req.overlay:
        colours = dev.colour(grid, small_labels, engine._palette_t["rgb"], mixed)
    if req.color:
        outs["color"] = colours
    mark("colour")
    if req.overlay:
        base = frame if out_hw == tuple(frame.shape[:2]) else small
        tint = colours if req.order == "rgb" else colours.flip(-1)
        outs["overlay"] = dev.blend(base, tint, req.alpha)
    mark("overlay")
    if req.confidence:
        outs["confidence"] = dev.confidence(grid, logits, mixed)
    mark("confidence")
    return outs


def warm_up_cuda(engine: SegmentationEngine) -> None:
    width, height = engine.resolution
    with torch.cuda.device(engine.device):
        _pick_memory_format(engine)
        if engine._cuda_graph:
            x = engine.prepare_model_input()
            if engine._runner.capture_graph(x):
                log.info("CANet forward captured as a CUDA graph")
    frame = np.zeros((height, width, 3), np.uint8)
    for _ in range(2):
        engine.infer(frame, color=True, overlay=True, confidence=True)


def _pick_memory_format(engine: SegmentationEngine, iters: int = 10) -> None:
    """Time NCHW against channels_last on this GPU and keep the faster."""
    runner, timings = engine._runner, {}
    for channels_last in (False, True):
        runner.set_channels_last(channels_last)
        x = engine.prepare_model_input()
        for _ in range(3):
            runner.forward(x)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            runner.forward(x)
        end.record()
        end.synchronize()
        timings[channels_last] = start.elapsed_time(end) / iters
    best = min(timings, key=timings.get)
    runner.set_channels_last(best)
    log.info("memory format: %s (%.3f ms vs %.3f ms)", "channels_last" if best else "NCHW",
             timings[best], timings[not best])

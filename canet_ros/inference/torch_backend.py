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
"torch"``, an untrained model, or a GPU. Nothing here knows the engine: ``load`` and the
runner builders return what the engine stores, and ``DevicePath`` is given the tables and
callables it works with, so the import runs one way (engine -> here).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
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
from . import device_ops as dev
from . import preprocess as pre
from .cpu_runners import choose_precision, make_cpu_runner, runs_on, runtime_for, setup_failure
from .onnx_runtime import (
    cached_graph,
    export_onnx,
    file_digest,
    onnxruntime_available,
    store_graph,
)
from .results import EngineError, Request, cpu_name, resolve_device
from .runners import CudaPipeline, TorchRunner

log = logging.getLogger("canet_ros.inference")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}

FileVersion = tuple[str, tuple[int, ...]]  # (file_digest, what os.stat says of the file)


def file_version(path: Path) -> FileVersion | None:
    """Return the file's hash and identity (inode, size, times); None if it cannot be read.

    Taken before the load and again after the export: only when both agree are the
    weights exported those of the hash (the file may be replaced meanwhile: a new best.pt
    renamed into place by ``canet train``, a deploy's ``mv``).
    """
    try:
        st = os.stat(path)  # first: a write after it changes the times, even one we hash
        digest = file_digest(path)
    except OSError:
        return None
    return digest, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class TorchModel:
    """A loaded model and what the engine records about it (``load``'s result)."""

    model: nn.Module
    meta: dict
    classes: ClassSet
    path: Path | None
    size: tuple[int, int]  # the network input (W, H)
    device: torch.device
    device_name: str
    precision: str  # as asked, with CUDA's "auto" resolved (the CPU's is the runners')
    version: FileVersion | None = None  # the file as it was just before the load


def load_model(checkpoint: PathLike, backbone: str | None) -> nn.Module:
    """Return the checkpoint's model in fp32, eval mode, gradients off."""
    try:
        model, _ = load_checkpoint(checkpoint, backbone=backbone)
    except CheckpointError as exc:
        raise EngineError(str(exc)) from exc
    return model.float().eval().requires_grad_(False)


def _load(checkpoint: PathLike | None, backbone: str | None, class_set: str | ClassSet,
          versioned: bool) -> tuple[nn.Module, dict, ClassSet, Path | None, FileVersion | None]:
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
        return build_canet(backbone, classes.num_classes), meta, classes, None, None
    try:
        path = resolve_checkpoint(checkpoint)
        version = file_version(path) if versioned else None  # before any read of the weights
        model, meta = load_checkpoint(path, backbone=backbone)
        classes = class_set_from_metadata(meta)
    except CheckpointError as exc:
        raise EngineError(str(exc)) from exc
    if classes.num_classes != model.num_classes:
        raise EngineError(f"{path}: metadata describes {classes.num_classes} classes for a "
                          f"{model.num_classes}-class model")
    return model.float().eval().requires_grad_(False), meta, classes, path, version


def load(checkpoint: PathLike | None, backbone: str | None, class_set: str | ClassSet,
         device: str, precision: str, runtime: str, resolution: tuple[int, int] | None
         ) -> TorchModel:
    """Check the device against precision and runtime, then load the model (on the CPU)."""
    device_t = resolve_device(device)
    cuda = device_t.type == "cuda"
    if precision == "fp16" and not cuda:
        raise EngineError("precision='fp16' needs a CUDA device; the CPU path runs fp32, "
                          "bf16, int8 or auto")
    if cuda and precision in ("bf16", "int8"):
        raise EngineError(f"precision={precision!r} is for the CPU; CUDA runs fp32 or fp16")
    if runtime == "onnxruntime" and cuda:
        raise EngineError("runtime='onnxruntime' is for the CPU; use runtime='torch' "
                          "(or 'auto') with CUDA")
    name = torch.cuda.get_device_name(device_t) if cuda else cpu_name()
    # Only a CPU export is cached by the file's hash: only it needs the file's version.
    exports = not cuda and runtime != "torch"
    model, meta, classes, path, version = _load(checkpoint, backbone, class_set, exports)
    if str(device).strip().lower() == "auto":  # after the load: a bad file is one error line
        log.info("device=auto: running on %s (%s)", device_t, name)
    try:
        size = resolution or pre.parse_resolution(meta.get("input_size")
                                                  or pre.DEFAULT_RESOLUTION)
    except ValueError as exc:  # only the checkpoint's own size is parsed here
        raise EngineError(f"{path}: its input_size cannot be the resolution ({exc}); give "
                          f"a resolution") from None
    if cuda and precision == "auto":
        precision = "fp32"  # CUDA's auto keeps fp32 (fp16 is asked for by name)
    return TorchModel(model, meta, classes, path, size, device_t, name, precision, version)


def cpu_runner(loaded: TorchModel, runtime: str,
               preprocess: Callable[[np.ndarray], np.ndarray]) -> Any:
    """Return the CPU runner: the export on ONNX Runtime / OpenVINO where it runs, else torch.

    ``preprocess`` turns an RGB frame into the network input (int8 calibration needs it).
    The runner's ``runtime`` and ``precision`` say what was chosen.
    """
    precision = loaded.precision
    if runtime == "onnxruntime" and not onnxruntime_available():
        raise EngineError("runtime='onnxruntime' but the onnxruntime package is not installed")
    if runtime == "torch" and precision not in ("fp32", "auto"):
        raise EngineError(f"precision={precision!r} runs on {runs_on(precision)}; "
                          "runtime='torch' runs fp32: use runtime 'auto' (canet benchmark: "
                          "--runtime auto)")
    # A precision this CPU or install cannot run stops here, before any fallback.
    chosen = choose_precision(precision, runtime) if runtime != "torch" else "fp32"
    # auto is resolved by the factory, which knows what is cached and falls back.
    asked = "auto" if precision == "auto" else chosen
    if runtime != "torch" and runtime_for(chosen, runtime):
        try:
            return _export_runner(loaded, asked, runtime, preprocess)
        except Exception as exc:  # an exporter or runtime problem: torch still runs fp32
            why = setup_failure(exc, runtime_for(chosen, runtime))  # names the runtime tried
            if chosen != "fp32" and asked != "auto":
                raise EngineError(f"{chosen}: {why}") from exc
            if runtime == "onnxruntime":
                raise EngineError(why) from exc
            log.warning("%s; using torch on the CPU", why)
    # channels_last measured 2x faster than NCHW for this net on x86 (docs/performance.md).
    return TorchRunner(loaded.model, loaded.device, torch.float32, channels_last=True)


def _export_runner(loaded: TorchModel, asked: str, runtime: str,
                   preprocess: Callable[[np.ndarray], np.ndarray]) -> Any:
    data = _export(loaded.model, loaded.size, loaded.path, loaded.meta, loaded.version)
    try:
        return make_cpu_runner(data, loaded.size, loaded.classes.num_classes, asked, runtime,
                               preprocess)
    except EngineError:
        raise
    except Exception as exc:
        if loaded.path is not None:  # exported just now, not read from the cache
            raise
        # A model without a checkpoint file reads its export from the cache by fingerprint;
        # a damaged file there would fail every start: export again, once.
        log.warning("cached ONNX export unusable (%s); exporting again", exc)
        data = export_onnx(loaded.model, loaded.size, refresh=True)
        return make_cpu_runner(data, loaded.size, loaded.classes.num_classes, asked, runtime,
                               preprocess)


def _export(model: nn.Module, size: tuple[int, int], path: Path | None,
            meta: dict, version: FileVersion | None) -> Path | bytes:
    """Export; a checkpoint file's export is cached by the file's hash, for torch-free starts.

    The cached file is returned where there is one: the int8 graph is named after the file
    it was made from, so the next (cached) start finds the one this start makes.
    """
    if path is None:
        return export_onnx(model, size)
    data = export_onnx(model, size, use_cache=False)
    if version is None or file_version(path) != version:
        # Replaced between the load and now: filed under the new file's hash, this export
        # of the weights read before would run at every later start in its place.
        log.warning("%s changed while it was loaded and exported: this export is not "
                    "cached (this run uses the weights it read; the next start exports "
                    "the file as it is then)", path)
        return data
    digest = version[0]
    store_graph(digest, meta, size, data)
    entry = cached_graph(digest, size)
    return entry.path if entry is not None else data


def cuda_runner(loaded: TorchModel) -> TorchRunner:
    """Return the model on its GPU in the precision asked for."""
    torch.backends.cudnn.benchmark = True  # fixed shapes: autotuned kernels pay off
    return TorchRunner(loaded.model, loaded.device, _DTYPES[loaded.precision],
                       channels_last=True)


class DevicePath:
    """The CUDA frame path: everything between the uploaded frame and the download.

    Given the engine's tables (moved to the runner's device here) and its ``out_hw`` and
    ``grid``; tests run ``compute`` on CPU tensors.
    """

    def __init__(self, runner: TorchRunner, resolution: tuple[int, int],
                 mean: tuple[float, ...], std: tuple[float, ...], palette: np.ndarray,
                 label_dtype: np.dtype, *, tta: bool, out_hw: Callable[..., tuple[int, int]],
                 grid: Callable[..., Any], cuda_graph: bool = False):
        device = runner.device
        self.runner, self.resolution, self.tta = runner, resolution, tta
        self.out_hw, self.grid, self.cuda_graph = out_hw, grid, cuda_graph
        self.palette = torch.from_numpy(palette).to(device)
        self.affine = tuple(t.to(device) for t in dev.normalisation_affine(mean, std))
        # torch has no general uint16; int32 travels and becomes uint16 on the host.
        self.label_dtype = torch.uint8 if label_dtype == np.uint8 else torch.int32

    def set_palette(self, palette: np.ndarray) -> None:
        """Colour frames submitted from now on with ``palette`` ((C, 3) uint8 RGB)."""
        device = self.runner.device
        table = torch.from_numpy(palette).to(device)
        if device.type == "cuda":
            # Frames in flight read the old table on the compute stream: freed now, its
            # memory could be handed out again before they are done.
            torch.cuda.synchronize(device)
        self.palette = table

    def pipeline(self, lock: Any) -> CudaPipeline:
        """Return the streams and pinned buffers that run :meth:`compute` per frame."""
        return CudaPipeline(self.runner.device, self.compute, lock)

    def compute(self, frame: torch.Tensor, req: Request,
                clock: Any = None) -> dict[str, torch.Tensor]:
        """Make the outputs ``req`` asks for from one frame on the device (current stream).

        Tensors are dropped as soon as they are spent and confidence (a network-size
        softmax) comes before the frame-sized images: the frame's peak memory stays
        under half of its upsampled fp32 logits (docs/performance.md). Stage times are
        kept by name, so the order does not change them.
        """
        mark = clock.mark if clock is not None else (lambda stage: None)
        runner = self.runner
        out_hw = self.out_hw(tuple(frame.shape[:2]))
        x, small = dev.preprocess(frame, self.resolution, *self.affine, req.order,
                                  runner.dtype, runner.channels_last)
        base = frame if out_hw == tuple(frame.shape[:2]) else small
        del small
        mark("preprocess")
        logits = runner.forward(x)
        if self.tta:  # a graph replay reuses its output: take the first before the second
            logits = dev.flip_tta_logits(logits.float().clone(), runner.forward(x.flip(-1)))
        del x
        mark("model")
        grid = self.grid(out_hw, lambda cells: dev.DeviceGrid(cells, frame.device))
        labels, small_labels, mixed = dev.labels(grid, logits, self.label_dtype,
                                                 confidence=req.confidence)
        outs = {"labels": labels}
        mark("upsample_argmax")
        if req.confidence:
            outs["confidence"] = dev.confidence(grid, logits, mixed)
            if mixed is not None:
                mixed.exact = None  # in the output now
        mark("confidence")
        outs.update(self._images(grid, small_labels, mixed, base, req, mark))
        return outs

    def _images(self, grid: Any, small_labels: torch.Tensor, mixed: Any, base: torch.Tensor,
                req: Request, mark: Callable[[str], None]) -> dict[str, torch.Tensor]:
        """Colour and overlay as asked (both stages marked either way)."""
        outs, colours = {}, None
        if req.color or req.overlay:
            colours = dev.colour(grid, small_labels, self.palette, mixed)
        if req.color:
            outs["color"] = colours
        mark("colour")
        if req.overlay:
            tint = colours if req.order == "rgb" else colours.flip(-1)
            outs["overlay"] = dev.blend(base, tint, req.alpha)
        mark("overlay")
        return outs

    def prepare(self, model_input: Callable[[], torch.Tensor]) -> None:
        """Pick the memory format, then capture the CUDA graph if asked (during warm-up)."""
        with torch.cuda.device(self.runner.device):
            _pick_memory_format(self.runner, model_input)
            if self.cuda_graph and self.runner.capture_graph(model_input()):
                log.info("CANet forward captured as a CUDA graph")


def _pick_memory_format(runner: TorchRunner, model_input: Callable[[], torch.Tensor],
                        iters: int = 10) -> None:
    """Time NCHW against channels_last on this GPU and keep the faster."""
    timings = {}
    for channels_last in (False, True):
        runner.set_channels_last(channels_last)
        x = model_input()
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

"""Measure a SegmentationEngine.

Reports model-only and whole-pipeline latency, achieved GFLOP/s against this machine's
matmul rate, memory peaks, and (optionally) other models on the same input. Everything
reported comes from one run, so ratios share the same noise.
"""
from __future__ import annotations

import array
import copy
import os
import resource
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .inference import SegmentationEngine
from .inference.onnx_runtime import OnnxRunner, export_onnx, onnxruntime_available
from .models import build_canet, count_macs

__all__ = ["make_image_msg", "matmul_gflops", "run_benchmark", "time_calls",
           "time_interleaved"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], iters: int, warmup: int, device: torch.device,
               desc: str, progress: bool = True) -> np.ndarray:
    """Wall-clock ms of ``iters`` calls, each finished (GPU synced) before its clock stops."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in tqdm(range(iters), desc=desc, file=sys.stderr, disable=not progress, leave=False):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return np.asarray(times)


def time_interleaved(fns: dict[str, Callable[[], Any]], iters: int, warmup: int,
                     device: torch.device, progress: bool = True) -> dict[str, np.ndarray]:
    """Time several functions like :func:`time_calls`, taking turns within each iteration.

    On a shared, noisy machine load drifts, and turns make it hit all of them alike.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in tqdm(range(iters), desc=" / ".join(fns), file=sys.stderr, disable=not progress,
                  leave=False):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: np.asarray(t) for name, t in times.items()}


def matmul_gflops(device: torch.device, size: int = 4096, iters: int = 3) -> float:
    """fp32 matmul rate of ``size`` x ``size`` matrices (2 FLOPs per multiply-accumulate)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the reference is true fp32
    try:
        times = time_calls(lambda: a @ b, iters, 1, device, "matmul", progress=False)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return 2.0 * size ** 3 / (float(np.median(times)) / 1000.0) / 1e9


def make_image_msg(frame_bgr: np.ndarray) -> SimpleNamespace:
    """Return a sensor_msgs/Image look-alike: a bgr8 frame in an array('B'), as rclpy does."""
    from .image_codec import array_to_image_fields

    fields = array_to_image_fields(frame_bgr, "bgr8")
    fields["data"] = array.array("B", fields["data"])
    return SimpleNamespace(**fields)


def _synthetic_frame(height: int, width: int) -> np.ndarray:
    """Smooth gradients plus noise: content does not change the cost, only looks like a scene."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                     (xx + yy) * 255 // max(width + height - 2, 1)], axis=-1)
    noise = rng.integers(-20, 21, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _fill_outputs(result: Any, order: str, outs: dict[str, Any]) -> None:
    from .image_codec import fill_image

    labels = "mono8" if result.labels.dtype == np.uint8 else "mono16"
    fill_image(outs["labels"], result.labels, labels)
    fill_image(outs["color"], result.color, "rgb8")
    fill_image(outs["overlay"], result.overlay, order + "8")


def _pipeline_step(engine: SegmentationEngine, msg: Any, outs: dict[str, Any]) -> None:
    """Do what the ROS node does per message: decode, infer, fill three output Images."""
    from .image_codec import native_order, to_frame

    order = native_order(msg)
    result = engine.infer(to_frame(msg, order), order, color=True, overlay=True)
    _fill_outputs(result, order, outs)


def _stream_ms(engine: SegmentationEngine, msg: Any, outs: dict[str, Any], iters: int,
               progress: bool) -> float:
    """Return mean ms per message of the pipeline streamed through infer_many.

    One frame is in flight; this is the throughput figure on CUDA, where transfers
    overlap compute.
    """
    from .image_codec import native_order, to_frame

    order = native_order(msg)
    frames = (to_frame(msg, order) for _ in range(iters))
    results = engine.infer_many(frames, order, color=True, overlay=True)
    start = time.perf_counter()
    for result in tqdm(results, total=iters, desc="stream", file=sys.stderr,
                       disable=not progress, leave=False):
        _fill_outputs(result, order, outs)
    _sync(engine.device)
    return (time.perf_counter() - start) * 1000.0 / iters


def _faster_layout(net: torch.nn.Module, x: torch.Tensor, device: torch.device
                   ) -> torch.memory_format:
    """Leave ``net`` in whichever layout a quick probe finds faster, and return it.

    Fairness: torchvision's LR-ASPP is several times slower in channels_last on x86
    CPUs while CANet is twice as fast, so each model gets its own better layout.
    """
    best, best_ms = torch.contiguous_format, float("inf")
    for fmt in (torch.contiguous_format, torch.channels_last):
        net.to(memory_format=fmt)
        xf = x.contiguous(memory_format=fmt)
        ms = float(np.min(time_calls(lambda xf=xf: net(xf), 2, 1, device, "", False)))
        if ms < best_ms:
            best, best_ms = fmt, ms
    net.to(memory_format=best)
    return best


def _compare_fns(engine: SegmentationEngine, frame: np.ndarray
                 ) -> tuple[dict[str, Callable[[], Any]], dict[str, None], list[str]]:
    """Build forward calls of other models to compare with the engine's.

    These are torchvision's mobile segmenters and the same CANet in other runtimes, all
    on the engine's normalised input for ``frame``; also returns what was skipped.
    """
    from torchvision.models import segmentation as seg

    device, fns, skipped, notes = engine.device, {}, {}, []
    dtype = torch.float16 if engine.precision == "fp16" else torch.float32
    x_np = engine.prepare_model_input(frame)
    if not isinstance(x_np, np.ndarray):
        x_np = x_np.float().contiguous().cpu().numpy()
    x = torch.from_numpy(x_np).to(device=device, dtype=dtype)
    for name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"):
        net = getattr(seg, name)(weights=None, weights_backbone=None,
                                 num_classes=engine.num_classes)
        net = net.eval().to(device=device, dtype=dtype)
        with torch.inference_mode():
            xf = x.contiguous(memory_format=_faster_layout(net, x, device))
        fns[name] = _inference(lambda n=net, xf=xf: n(xf)["out"])
    cpu_model = copy.deepcopy(engine.model).float().cpu().eval()
    if engine.runtime != "torch":
        torch_model = copy.deepcopy(cpu_model).to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        fns["torch_canet"] = _inference(lambda: torch_model(xc))
    if device.type != "cpu" or not onnxruntime_available():
        skipped["onnxruntime_canet"] = None
        notes.append("onnxruntime_canet not timed: " + (
            "onnxruntime is not installed" if device.type == "cpu" else
            "the installed ONNX Runtime runs on the CPU, not on the engine's device"))
        return fns, skipped, notes
    cpu_model.to(memory_format=torch.contiguous_format)
    runner = OnnxRunner(export_onnx(cpu_model, engine.resolution), engine.resolution,
                        engine.num_classes)
    fns["onnxruntime_canet"] = lambda: runner.forward_numpy(x_np)
    return fns, skipped, notes


def _inference(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode():
            return fn()
    return call


def _reset_device_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def run_benchmark(backbone: str = "mobilenetv2", height: int = 512, width: int = 1024,
                  device: str = "auto", precision: str = "fp32", iters: int = 50,
                  warmup: int = 5, checkpoint: str | None = None, runtime: str = "auto",
                  compare: bool = False, matmul_size: int = 4096,
                  progress: bool = True) -> dict[str, Any]:
    """All measurements as one JSON-ready dict (see docs/performance.md for the fields)."""
    if iters < 1 or warmup < 0 or height < 1 or width < 1:
        raise ValueError("iters must be >= 1, warmup >= 0, height and width positive")
    engine = SegmentationEngine(checkpoint, backbone=backbone, device=device,
                                precision=precision, resolution=(width, height),
                                runtime=runtime)
    dev = engine.device
    _reset_device_peak(dev)
    gmacs = count_macs(build_canet(engine.backbone, engine.num_classes), height, width)[0] / 1e9
    frame_bgr = _synthetic_frame(height, width)
    frame_rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
    x = engine.prepare_model_input(frame_rgb)
    msg = make_image_msg(frame_bgr)
    outs = {k: SimpleNamespace(header=None, data=None) for k in ("labels", "color", "overlay")}
    fns = {"model": lambda: engine.run_model(x),
           "pipeline": lambda: _pipeline_step(engine, msg, outs)}
    for fn in fns.values():  # the engine has now run every step once: its memory peak
        fn()
    peak_host = _peak_rss_mb()
    skipped, notes = {}, []
    if compare:
        extra, skipped, notes = _compare_fns(engine, frame_rgb)
        fns.update(extra)
    times = time_interleaved(fns, iters, warmup, dev, progress)
    stream_ms = _stream_ms(engine, msg, outs, iters, progress)
    peak_device = torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == "cuda" else None
    report = _report(engine, times["model"], times["pipeline"], gmacs, iters, warmup)
    report.update(pipeline_stream_ms=stream_ms, pipeline_stream_fps=1000.0 / stream_ms,
                  peak_device_mb=peak_device)
    if compare:
        report["compare"] = {name: float(np.median(t)) for name, t in times.items()
                             if name not in ("model", "pipeline")}
        report["compare"].update(skipped)
    if notes:
        report["notes"] = notes
    report["reference_gflops"] = matmul_gflops(dev, matmul_size)
    report["matmul_size"] = matmul_size
    report["gflops_ratio"] = report["model_gflops"] / report["reference_gflops"]
    report["peak_host_mb"] = peak_host
    report["peak_host_mb_process"] = _peak_rss_mb()  # includes --compare models, matmul
    return report


def _peak_rss_mb() -> float:
    """Peak resident set of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _report(engine: SegmentationEngine, model: np.ndarray, pipe: np.ndarray, gmacs: float,
            iters: int, warmup: int) -> dict[str, Any]:
    model_ms, pipe_ms = float(np.median(model)), float(np.median(pipe))
    return {
        "backbone": engine.backbone, "height": engine.resolution[1],
        "width": engine.resolution[0], "num_classes": engine.num_classes,
        "device": engine.device_name, "device_type": engine.device.type,
        "runtime": engine.runtime, "precision": engine.precision, "iters": iters,
        "warmup": warmup, "torch": torch.__version__, "threads": torch.get_num_threads(),
        # Spinning OpenMP workers collapse torch's CPU speed on oversubscribed cores.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "model_ms": model_ms, "model_p99_ms": float(np.percentile(model, 99)),
        "pipeline_ms": pipe_ms, "pipeline_p99_ms": float(np.percentile(pipe, 99)),
        "model_fps": 1000.0 / model_ms, "pipeline_fps": 1000.0 / pipe_ms,
        "pipeline_over_model": pipe_ms / model_ms, "gmacs": gmacs,
        "model_gflops": 2.0 * gmacs / (model_ms / 1000.0),
    }

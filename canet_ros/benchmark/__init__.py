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

"""Measure a SegmentationEngine.

Reports model-only and whole-pipeline latency (at the network size or any camera frame
size, with a per-stage breakdown), achieved GFLOP/s against this machine's matmul rate,
memory peaks, and (optionally) other models on the same input. Everything reported
comes from one run, so ratios share the same noise. Fields: docs/performance.md.
"""
from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..inference import SegmentationEngine, kernels
from .checkpoint_meta import checkpoint_facts, network_size
from .frames import FramePipeline, load_frame, make_image_msg
from .timing import (
    auto_iters,
    complete_rounds,
    matmul_gflops,
    matmul_size_for,
    say,
    sync,
    time_calls,
    time_interleaved,
    torch_module,
)

__all__ = ["LABEL_STAGES", "STAGES", "load_frame", "make_image_msg", "matmul_gflops",
           "run_benchmark", "time_calls", "time_interleaved"]

# The per-stage breakdown of pipeline_all, in order (docs/performance.md).
STAGES = ("decode", "preprocess", "model", "upsample_argmax", "colour", "overlay",
          "confidence", "encode")
# Those of pipeline_labels (CPU only): the labels alone, as a labels-only subscriber gets.
LABEL_STAGES = ("decode", "preprocess", "model", "upsample_argmax", "encode")


def _peak_rss_mb() -> float:
    """Peak resident set of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class _Measured:
    """What the run has measured so far; an interrupted run reports this much."""

    frame_size: tuple[int, int]
    source: str
    warmup: int
    times: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    peak_host: float | None = None
    stream_ms: float | None = None
    matmul_size: int | None = None
    reference_gflops: float | None = None
    interrupted: bool = False


def run_benchmark(backbone: str | None = None, height: int | None = None,
                  width: int | None = None,
                  device: str = "auto", precision: str = "fp32", iters: int | None = None,
                  warmup: int = 2, checkpoint: str | None = None, runtime: str = "auto",
                  compare: bool = False, matmul_size: int | None = None, progress: bool = True,
                  frame_size: tuple[int, int] | None = None, image: str = "sample",
                  tta_scales: Sequence[float] | None = None) -> dict[str, Any]:
    """All measurements as one JSON-ready dict (see docs/performance.md for the fields).

    ``iters`` None: as many timed rounds as fit about 30 s here (10 to 50); ``matmul_size``
    None: the reference matmul sized to this machine. ``tta_scales`` (e.g. ``(1.0,)`` or
    ``(0.75, 1.0, 1.25)``) adds the ``tta`` block: what the offline tools' test-time
    augmentation costs against the same calls without it. Ctrl-C ends the run with the
    report of what was measured so far (``interrupted`` true). ``backbone`` None: the
    checkpoint's, or mobilenetv2 for the untrained model timed without one. ``width`` and
    ``height`` None: the checkpoint's input_size, else 1024x512 (``network_size``).
    """
    if (iters is not None and iters < 1) or warmup < 0 or any(
            v is not None and v < 1 for v in (height, width)):
        raise ValueError("iters must be >= 1, warmup >= 0, height and width positive")
    # A bad file is refused here in one error line, before any work is announced.
    facts = None if checkpoint is None else checkpoint_facts(
        checkpoint, (width, height) if width and height else None)
    width, height = network_size(width, height, facts)
    frame_size = frame_size or (width, height)
    frame_bgr, source = load_frame(image, frame_size)
    say("building the engine (a checkpoint's first use at a network size exports it to "
        "ONNX, which takes a while)", progress)
    if backbone is None and checkpoint is None:
        backbone = "mobilenetv2"
    engine_kw = {"backbone": backbone, "device": device, "precision": precision,
                 "resolution": (width, height), "runtime": runtime}
    engine = SegmentationEngine(checkpoint, **engine_kw)
    pipe = FramePipeline(engine, make_image_msg(frame_bgr))
    x = engine.prepare_model_input(np.ascontiguousarray(
        cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]))
    fns = {"model": lambda: engine.run_model(x),
           "pipeline": lambda: pipe.run(color=True, overlay=True),
           # Its stages too on the CPU, where the clock is a few perf_counter calls (on
           # CUDA it would record events into the stream being timed).
           "pipeline_labels": (lambda: pipe.run_timed(labels_only=True))
           if engine.device_type == "cpu" else pipe.run,
           "pipeline_all": pipe.run_timed}
    m = _Measured(frame_size, source, warmup)
    try:
        say(f"warming up on {source}", progress)
        for fn in fns.values():  # the engine has now run every step once: its memory peak
            fn()
        m.peak_host = _peak_rss_mb()
        if compare:
            from .compare import compare_fns

            extra, m.skipped, m.notes = compare_fns(engine, x, progress, pipe.msg)
            fns.update(extra)
        if tta_scales:
            fns.update(_tta_fns(engine, x, tta_scales, pipe.msg, checkpoint, engine_kw,
                                progress))
        _time_everything(m, engine, pipe, fns, iters, matmul_size, progress)
    except KeyboardInterrupt:
        m.interrupted = True
        say("interrupted: reporting what was measured so far", progress)
    return _assemble(engine, pipe, m, compare, tta_scales)


def _time_everything(m: _Measured, engine: SegmentationEngine, pipe: FramePipeline,
                     fns: dict[str, Callable[[], Any]], iters: int | None,
                     matmul_size: int | None, progress: bool) -> None:
    """One round sizes the run and says how long it will take; then the timed rounds."""
    start = time.perf_counter()
    call_s = {}
    for name, fn in fns.items():  # untimed too; --warmup rounds follow it
        fn()
        sync(engine.device_type)
        call_s[name] = time.perf_counter() - start - sum(call_s.values())
    round_s = time.perf_counter() - start
    chosen = iters or auto_iters(round_s)
    estimate = (m.warmup + chosen) * round_s + chosen * call_s["pipeline"]
    matmul = torch_module() is not None
    say(f"timing {chosen} rounds of {len(fns)} calls ({round_s:.2f} s a round"
        f"{', as many as fit about 30 s' if iters is None else ''}), streaming"
        f"{' and the reference matmul' if matmul else ''}: about {estimate + 3:.0f} s; "
        f"Ctrl-C prints what was measured so far", progress)
    time_interleaved(fns, chosen, m.warmup, engine.device_type, progress, into=m.times)
    m.stream_ms = pipe.stream_ms(chosen, progress)
    if not matmul:  # the engine ran its cached export without torch: keep what it measured
        m.notes.append("reference_gflops not measured: the reference matmul runs in torch, "
                       "which is not installed")
        return
    say("timing the reference matmul", progress)
    m.matmul_size = matmul_size or matmul_size_for(engine.device_type)
    m.reference_gflops = matmul_gflops(engine.device_type, m.matmul_size)


def _assemble(engine: SegmentationEngine, pipe: FramePipeline, m: _Measured, compare: bool,
              tta_scales: Sequence[float] | None) -> dict[str, Any]:
    """Return the report from complete rounds only; what was not measured is None."""
    times = complete_rounds(m.times)
    done = len(times["model"]) if times else 0
    report = _report(engine, times, done, m.warmup, m.frame_size, m.source, m.notes)
    report["interrupted"] = m.interrupted
    for key, kind, stages in (("stages_ms", "all", STAGES),
                              ("stages_labels_ms", "labels", LABEL_STAGES)):
        calls = pipe.stages[kind]
        timed = calls[len(calls) - len(m.times.get(f"pipeline_{kind}", [])):][:done]
        report[key] = {s: float(np.median([st.get(s, 0.0) for st in timed]))
                       for s in stages} if done and timed else None
    if done:
        _add_optional(report, times, m.skipped if compare else None, tta_scales)
    if m.notes:
        report["notes"] = m.notes
    report.update(pipeline_stream_ms=m.stream_ms,
                  pipeline_stream_fps=1000.0 / m.stream_ms if m.stream_ms else None,
                  peak_device_mb=_peak_device_mb(engine),
                  reference_gflops=m.reference_gflops, matmul_size=m.matmul_size)
    report["gflops_ratio"] = (report["model_gflops"] / m.reference_gflops
                              if m.reference_gflops and report["model_gflops"] else None)
    report["peak_host_mb"] = m.peak_host
    report["peak_host_mb_process"] = _peak_rss_mb()  # includes --compare models, matmul
    return report


def _add_optional(report: dict[str, Any], times: dict[str, np.ndarray],
                  skipped: dict[str, None] | None,
                  tta_scales: Sequence[float] | None) -> None:
    """Return the --compare and --tta blocks, from the same interleaved timing run."""
    med = {name: float(np.median(t)) for name, t in times.items()}
    if skipped is not None:
        report["compare"] = {name: ms for name, ms in med.items()
                             if name != "model" and not name.startswith(("pipe", "offline"))}
        report["compare"].update(skipped)
    if tta_scales:
        from .tta import tta_report

        report["tta"] = tta_report(med, tta_scales)


def _tta_fns(engine: SegmentationEngine, x: Any, scales: Sequence[float], msg: Any,
             checkpoint: str | None, engine_kw: dict[str, Any],
             progress: bool) -> dict[str, Callable[[], Any]]:
    from .tta import tta_fns

    say("building a second engine with test-time augmentation (segment-bag --tta)", progress)
    tta_pipe = FramePipeline(SegmentationEngine(checkpoint, tta=True, **engine_kw), msg)
    fns = tta_fns(engine, x, scales, tta_pipe.run)
    for fn in fns.values():  # first calls (lazy model load, allocations) stay untimed
        fn()
    return fns


def _peak_device_mb(engine: SegmentationEngine) -> float | None:
    if engine.device_type != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_allocated(engine.device) / 2 ** 20


def _gmacs(engine: SegmentationEngine, notes: list[str]) -> float | None:
    """Return the model's GMACs, counted on the torch model; None (and a note) without torch."""
    try:
        from ..models import build_canet, count_macs
    except ModuleNotFoundError as exc:
        if exc.name not in ("torch", "torchvision"):
            raise
        notes.append(f"gmacs, model_gflops not computed: counting the MACs builds the model "
                     f"in torch and torchvision, and {exc.name} is not installed")
        return None
    return count_macs(build_canet(engine.backbone, engine.num_classes),
                      engine.resolution[1], engine.resolution[0])[0] / 1e9


def _report(engine: SegmentationEngine, times: dict[str, np.ndarray], iters: int,
            warmup: int, frame_size: tuple[int, int], source: str,
            notes: list[str]) -> dict[str, Any]:
    """Return the run's setting and, where ``times`` has rounds, the figures (else None).

    Without torch (a cached export on a CPU runtime) its figures are None and ``notes``
    says why: the timings stand without them.
    """
    torch = torch_module()
    gmacs = _gmacs(engine, notes)
    report = {
        "backbone": engine.backbone, "height": engine.resolution[1],
        "width": engine.resolution[0], "frame_width": frame_size[0],
        "frame_height": frame_size[1], "frame_source": source,
        "num_classes": engine.num_classes, "device": engine.device_name,
        "device_type": engine.device_type, "runtime": engine.runtime,
        "precision": engine.precision, "iters": iters, "warmup": warmup,
        "torch": torch.__version__ if torch else None,
        "threads": torch.get_num_threads() if torch else None,
        "cv2_threads": cv2.getNumThreads(),
        # The CPU frame path's loops: numba's compiled ones or OpenCV/numpy's.
        "cpu_loops": kernels.loops_for(engine.device_type),
        # Spinning OpenMP workers collapse torch's CPU speed on oversubscribed cores.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gmacs": gmacs,
    }
    names = ("model", "pipeline", "pipeline_labels", "pipeline_all")
    if not times:
        report.update({f"{n}_{k}": None for n in names for k in ("ms", "p99_ms")})
        report.update(dict.fromkeys(("model_fps", "pipeline_fps", "model_gflops")))
        report.update({f"{n}_over_model": None for n in names[1:]})
        return report
    med = {name: float(np.median(t)) for name, t in times.items()}
    p99 = {name: float(np.percentile(t, 99)) for name, t in times.items()}
    model_ms = med["model"]
    for name in names:
        report[f"{name}_ms"], report[f"{name}_p99_ms"] = med[name], p99[name]
    report.update({
        "model_fps": 1000.0 / model_ms, "pipeline_fps": 1000.0 / med["pipeline"],
        "model_gflops": 2.0 * gmacs / (model_ms / 1000.0) if gmacs is not None else None,
        **{f"{name}_over_model": med[name] / model_ms for name in names[1:]},
    })
    return report

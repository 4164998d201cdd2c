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

"""``canet benchmark --compare``: other models and runtimes on the engine's own input.

Building these takes a minute on a small CPU (two torchvision models, a deep copy of
CANet, an ONNX export), so each phase says what it is doing before it starts.
"""
from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..inference import SegmentationEngine, kernels
from ..inference.cpu_runners import setup_failure
from ..inference.onnx_runtime import OnnxRunner, export_onnx, onnxruntime_available

__all__ = ["compare_fns"]


def _say(text: str, enabled: bool) -> None:
    if enabled:
        print(f"canet benchmark: --compare: {text}", file=sys.stderr, flush=True)


def _best_ms(fn: Callable[[], Any], device: torch.device, tries: int = 2) -> float:
    import time

    best = float("inf")
    for _ in range(tries + 1):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


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
        ms = _best_ms(lambda xf=xf: net(xf), device)
        if ms < best_ms:
            best, best_ms = fmt, ms
    net.to(memory_format=best)
    return best


def _inference(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode():
            return fn()
    return call


def compare_fns(engine: SegmentationEngine, x_model: Any, progress: bool = True,
                msg: Any = None
                ) -> tuple[dict[str, Callable[[], Any]], dict[str, None], list[str]]:
    """Forward calls of other models on the engine's normalised input, what was skipped, notes.

    torchvision's mobile segmenters (random init, same class count) and the same CANet
    in plain torch and in a separate ONNX Runtime session; on the CPU with ``msg`` (the
    pipeline's Image), also the engine at each CPU precision and OpenVINO's sessions
    (``cpu_precisions``).
    """
    from torchvision.models import segmentation as seg

    device, fns, skipped, notes = engine.device, {}, {}, []
    dtype = torch.float16 if engine.precision == "fp16" else torch.float32
    x_np = x_model if isinstance(x_model, np.ndarray) else \
        x_model.float().contiguous().cpu().numpy()
    x = torch.from_numpy(x_np).to(device=device, dtype=dtype)
    for name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"):
        _say(f"building torchvision {name} and probing NCHW vs channels_last", progress)
        net = getattr(seg, name)(weights=None, weights_backbone=None,
                                 num_classes=engine.num_classes)
        net = net.eval().to(device=device, dtype=dtype)
        with torch.inference_mode():
            xf = x.contiguous(memory_format=_faster_layout(net, x, device))
        fns[name] = _inference(lambda n=net, xf=xf: n(xf)["out"])
    _say("loading this CANet into torch", progress)
    cpu_model = copy.deepcopy(engine.model).float().cpu().eval()
    if engine.runtime != "torch":
        torch_model = copy.deepcopy(cpu_model).to(memory_format=torch.channels_last)
        xc = x.float().cpu().contiguous(memory_format=torch.channels_last)
        fns["torch_canet"] = _inference(lambda: torch_model(xc))
    if device.type != "cpu":
        skipped["onnxruntime_canet"] = None
        notes.append("onnxruntime_canet not timed: the installed ONNX Runtime runs on the CPU, "
                     "not on the engine's device")
        return fns, skipped, notes
    _say("exporting this CANet to ONNX for the CPU runtimes' sessions (cached after the "
         "first time)", progress)
    cpu_model.to(memory_format=torch.contiguous_format)
    try:
        graph, why = export_onnx(cpu_model, engine.resolution), None
    except Exception as exc:  # torch's exporter needs onnx, an optional extra
        graph, why = None, setup_failure(exc, None)
    if graph is not None and onnxruntime_available():
        runner = OnnxRunner(graph, engine.resolution, engine.num_classes)
        fns["onnxruntime_canet"] = lambda: runner.forward_numpy(x_np)
    else:
        skipped["onnxruntime_canet"] = None
        notes.append("onnxruntime_canet not timed: " + (why or "onnxruntime is not installed"))
    if msg is not None:
        more, more_notes = _cpu_rows(engine, graph, why, x_np, msg, progress)
        fns.update(more)
        notes += more_notes
    _say("timing (every model takes a turn in each iteration)", progress)
    return fns, skipped, notes


def _cpu_rows(engine: SegmentationEngine, graph: bytes | None, why: str | None,
              x_np: np.ndarray, msg: Any, progress: bool
              ) -> tuple[dict[str, Callable[[], Any]], list[str]]:
    """Return the engine-per-precision, OpenVINO and loops rows, or why they are not timed."""
    if graph is None:  # OpenVINO's sessions and the engines on it all start from the export
        return {}, [f"engine_<precision>, openvino_*, labels_*_loops not timed: {why}"]
    from .cpu_precisions import cpu_precision_fns

    fns, notes = cpu_precision_fns(engine, graph, x_np, msg, progress)
    compiled, status = kernels.loops_status()
    if kernels.installed() and not compiled and kernels.ENV not in status:
        # Both rows would time the OpenCV path (the loops cannot compile): no comparison.
        fns.pop("labels_numba_loops", None)
        fns.pop("labels_opencv_loops", None)
        notes.append(f"labels_numba_loops, labels_opencv_loops not timed: {status}")
    return fns, notes

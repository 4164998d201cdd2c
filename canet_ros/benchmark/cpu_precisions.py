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

"""``--compare`` on the CPU: every precision this CPU runs, and OpenVINO's own sessions.

The engine at each precision and OpenVINO's sessions on the same export are all timed in
the same interleaved run.

Names: ``engine_<precision>_model`` / ``engine_<precision>_pipeline`` (labels, colour
and overlay, as ``pipeline_ms``), ``openvino_f32_canet``, ``openvino_bf16_canet``, and,
where numba is installed, ``labels_numba_loops`` / ``labels_opencv_loops`` (the engine's
labels-only frame path with the compiled loops and without, ``inference.kernels``).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..inference import SegmentationEngine, kernels
from ..inference.cpu_features import cpu_precisions, relevant_features
from ..inference.cpu_runners import packages_missing, runtime_for
from ..inference.openvino_runner import OpenVinoRunner, openvino_available

__all__ = ["cpu_precision_fns"]


def _say(text: str, enabled: bool) -> None:
    if enabled:
        print(f"canet benchmark: --compare: {text}", file=sys.stderr, flush=True)


def cpu_precision_fns(engine: SegmentationEngine, graph: bytes, x_np: np.ndarray, msg: Any,
                      progress: bool = True) -> tuple[dict[str, Callable[[], Any]], list[str]]:
    """Return timed calls per CPU precision and OpenVINO session, and notes (features, skips)."""
    from .frames import FramePipeline

    native = cpu_precisions()
    notes = [f"CPU features: {' '.join(relevant_features()) or 'none of avx512/vnni/amx'}; "
             f"native CPU precisions: {', '.join(native)}"]
    fns: dict[str, Callable[[], Any]] = {}
    for precision in native:
        if runtime_for(precision) is None:
            # The engine timed above on a CPU runtime has its export: only runtimes lack.
            needs = packages_missing(precision, exported=engine.runtime != "torch")
            notes.append(f"engine_{precision} not timed: it needs pip install {needs}"
                         if needs else f"engine_{precision} not timed: no runtime for it")
            continue
        _say(f"building an engine at precision {precision}", progress)
        other = SegmentationEngine(engine.checkpoint_path, backbone=engine.backbone,
                                   device="cpu", precision=precision,
                                   resolution=engine.resolution)
        pipe = FramePipeline(other, msg)
        fns[f"engine_{precision}_model"] = lambda e=other: e.run_model(x_np)
        fns[f"engine_{precision}_pipeline"] = lambda p=pipe: p.run(color=True, overlay=True)
        notes.append(f"engine_{precision}: {other.runtime}")
    fns.update(_loop_fns(engine, msg, notes))
    if not openvino_available():
        notes.append("openvino_f32_canet, openvino_bf16_canet not timed: openvino is not "
                     "installed")
        return fns, notes
    for hint in ("fp32", "bf16"):
        name = f"openvino_{'f32' if hint == 'fp32' else hint}_canet"
        if hint not in native:  # OpenVINO would quietly run f32 and call it bf16
            notes.append(f"{name} not timed: this CPU has no bf16 instructions")
            continue
        _say(f"compiling {name}", progress)
        runner = OpenVinoRunner(graph, engine.resolution, engine.num_classes, hint)
        fns[name] = lambda r=runner: r.forward_numpy(x_np)
    return fns, notes


def _loop_fns(engine: SegmentationEngine, msg: Any, notes: list[str]
              ) -> dict[str, Callable[[], Any]]:
    """Return the labels-only frame path with the numba loops and with OpenCV/numpy alone."""
    from .frames import FramePipeline

    if not kernels.installed():
        notes.append("labels_numba_loops, labels_opencv_loops not timed: numba is not "
                     "installed")
        return {}
    pipe = FramePipeline(engine, msg)

    def labels(flag: str) -> Callable[[], Any]:
        def call() -> None:
            saved = os.environ.get(kernels.ENV)
            os.environ[kernels.ENV] = flag  # read at every call: switches the path here
            try:
                pipe.run()
            finally:
                if saved is None:
                    del os.environ[kernels.ENV]
                else:
                    os.environ[kernels.ENV] = saved
        return call

    return {"labels_numba_loops": labels("1"), "labels_opencv_loops": labels("0")}

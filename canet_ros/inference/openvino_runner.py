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

"""Run the cached ONNX export with OpenVINO on the CPU (bf16 and int8; docs/performance.md).

Compiled models are cached by OpenVINO itself in ``<cache_dir>/openvino`` so a later
start skips most of the compile.

One ``ov.Core`` serves the whole process (:func:`core`), never one per runner: each Core
loads its own CPU plugin, and each plugin swaps in a signal stack of its own
(``sigaltstack``) on the thread that made it and, when destroyed, puts back the one it
replaced, unmapping its own. Plugins destroyed in another order than they were made
leave the thread's signal stack pointing at unmapped memory, and the next signal Python
handles there (Ctrl-C, SIGTERM, the SIGCHLD of a DataLoader worker) kills the process
with SIGSEGV (docs/performance.md, "Signals and forks").
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .onnx_runtime import cache_dir

__all__ = ["OpenVinoRunner", "core", "openvino_available"]

log = logging.getLogger("canet_ros.inference")
# Our precision names -> OpenVINO's inference precision hint (for the layers a QDQ
# graph leaves in float).
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def core() -> Any:
    """The process's one ``openvino.Core``, kept until exit (why: the module's docstring)."""
    import openvino as ov

    return ov.Core()


class OpenVinoRunner:
    """One compiled OpenVINO model and its infer request, the interface of ``OnnxRunner``.

    ``precision`` "int8" expects a quantized (QDQ) graph: OpenVINO runs its quantized
    convolutions in int8 and the rest in ``float_precision`` (fp32 or bf16).
    ``forward_numpy`` returns the request's output buffer, overwritten by the next call.
    """

    runtime = "openvino"

    def __init__(self, onnx_model: bytes | Path, size: tuple[int, int], num_classes: int,
                 precision: str = "fp32", threads: int | None = None,
                 float_precision: str = "fp32"):
        import openvino as ov

        hint = _HINTS[float_precision if precision == "int8" else precision]
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if isinstance(onnx_model, Path):
            # Only a file has a stable identity for the compiled-model cache; given the
            # path, a cache hit skips reading and converting the ONNX file altogether.
            config["CACHE_DIR"] = str(cache_dir() / "openvino")
            self.compiled = core().compile_model(str(onnx_model), "CPU", config)
        else:
            model = core().read_model(onnx_model, ov.Tensor(np.empty(0, np.uint8)))
            self.compiled = core().compile_model(model, "CPU", config)
        self._request = self.compiled.create_infer_request()
        self.precision = precision
        width, height = size
        self.input_shape = (1, 3, height, width)
        shape = list(self.compiled.output(0).get_partial_shape().to_shape())
        expected = [1, num_classes, height, width]
        if shape != expected:
            raise ValueError(f"ONNX graph gives logits {shape}, expected {expected}")
        log.debug("OpenVINO %s on the CPU, execution precision %s", precision,
                  self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """(1,3,H,W) float32 -> (1,C,H,W) float32 logits (the request's output buffer)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.input_shape:
            raise ValueError(f"ONNX graph expects {self.input_shape}, got {x.shape}")
        # share_outputs: infer() would otherwise copy the logits into the dict it returns
        # (23 MB at 1024x512, ~10 ms here), which nothing reads.
        self._request.infer({0: x}, share_inputs=True, share_outputs=True)
        return self._request.get_output_tensor(0).data

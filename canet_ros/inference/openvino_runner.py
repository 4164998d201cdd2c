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
start skips most of the compile, where this process can use that folder
(:func:`openvino_cache`); a compile that fails with the cache is done again without it.

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
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .onnx_runtime import cache_dir, runtime_imports

__all__ = ["OpenVinoRunner", "core", "openvino_available", "openvino_cache",
           "without_final_upsample"]

log = logging.getLogger("canet_ros.inference")
# Our precision names -> OpenVINO's inference precision hint (for the layers a QDQ
# graph leaves in float).
_HINTS = {"fp32": "f32", "bf16": "bf16"}
# The graph's last layer when it can run in OpenCV instead (see OpenVinoRunner).
_UPSAMPLE_MODES = {"linear", "linear_onnx"}
_HALF_PIXEL = {"half_pixel", "pytorch_half_pixel"}


def openvino_available() -> bool:
    """Return whether OpenVINO imports; installed but broken counts as absent (said once)."""
    return runtime_imports("openvino", "OpenVINO")


@functools.lru_cache(maxsize=1)
def core() -> Any:
    """Return the process's one ``openvino.Core``, kept until exit (why: the module's docstring)."""
    import openvino as ov

    return ov.Core()


def openvino_cache() -> Path | None:
    """Return ``<cache>/openvino`` where OpenVINO can use it as its CACHE_DIR, else None.

    OpenVINO writes its blobs mode 0440 whatever the umask, and a blob it cannot read it
    removes and writes again: in a folder another user filled (a Docker image warmed as
    root, run as another user) that fails ("cannot remove: Permission denied") and with it
    the compile. So the folder is used where this process can write it (OpenVINO then
    replaces what it cannot read) or, read-only, where it can read every blob there
    (OpenVINO reads those and skips writing new ones); a folder not made yet is made here,
    as OpenVINO would fail to.
    """
    root = cache_dir()
    if root is None:  # no cache: OpenVINO compiles at every start
        return None
    folder = root / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK | os.X_OK):
            return folder
        blobs = [entry.path for entry in os.scandir(folder) if entry.name.endswith(".blob")]
    except OSError:
        return None
    return folder if all(os.access(blob, os.R_OK) for blob in blobs) else None


class OpenVinoRunner:
    """One compiled OpenVINO model and its infer request, the interface of ``OnnxRunner``.

    ``precision`` "int8" expects a quantized (QDQ) graph: OpenVINO runs its quantized
    convolutions in int8 and the rest in ``float_precision`` (fp32 or bf16).
    Both forwards return buffers that the next call overwrites.
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
            folder = openvino_cache()
            if folder is not None:
                config["CACHE_DIR"] = str(folder)
            model = core().read_model(str(onnx_model))
        else:
            model = core().read_model(onnx_model, ov.Tensor(np.empty(0, np.uint8)))
        width, height = size
        self.input_shape = (1, 3, height, width)
        shape = list(model.output(0).get_partial_shape().to_shape())
        expected = [1, num_classes, height, width]
        if shape != expected:
            raise ValueError(f"ONNX graph gives logits {shape}, expected {expected}")
        body = without_final_upsample(model)
        # OpenVINO's Interpolate is slow on this path: 7-16 ms of a 40-60 ms int8 model at
        # 1024x512 (docs/performance.md), where OpenCV upsamples the same logits in 1.7 ms.
        self._logits = np.empty(expected, np.float32) if body is not None else None
        self.compiled = _compile(body if body is not None else model, config)
        self._request = self.compiled.create_infer_request()
        self.precision = precision
        log.debug("OpenVINO %s on the CPU, execution precision %s", precision,
                  self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    @property
    def lowres(self) -> bool:
        """Whether :meth:`forward_lowres` stops before the final upsample."""
        return self._logits is not None

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """(1,3,H,W) float32 -> (1,C,H,W) float32 logits (a buffer the next call reuses)."""
        out = self.forward_lowres(x)
        if self._logits is None:
            return out
        size = self.input_shape[:1:-1]
        for low, plane in zip(out[0], self._logits[0], strict=True):
            # Half-pixel centres, edges clamped: torch's align_corners=False (a test checks).
            cv2.resize(low, size, dst=plane, interpolation=cv2.INTER_LINEAR)
        return self._logits

    def forward_lowres(self, x: np.ndarray) -> np.ndarray:
        """Return the graph's own output: logits before the final upsample when :attr:`lowres`."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.input_shape:
            raise ValueError(f"ONNX graph expects {self.input_shape}, got {x.shape}")
        # share_outputs: infer() would otherwise copy the output into the dict it returns
        # (23 MB of logits at 1024x512, ~10 ms here), which nothing reads.
        self._request.infer({0: x}, share_inputs=True, share_outputs=True)
        return self._request.get_output_tensor(0).data


def _compile(model: Any, config: dict[str, Any]) -> Any:
    """Compile ``model`` on the CPU; where that fails with OpenVINO's cache, again without."""
    try:
        return core().compile_model(model, "CPU", config)
    except Exception as exc:
        if "CACHE_DIR" not in config:
            raise
        # The cache changed since openvino_cache() looked, or is one it still cannot use
        # (others' blobs in a sticky folder): the model runs all the same, compiled afresh.
        log.warning("OpenVINO cannot use its model cache %s (%s); compiling without it",
                    config["CACHE_DIR"], _last_line(exc))
        return core().compile_model(model, "CPU",
                                    {k: v for k, v in config.items() if k != "CACHE_DIR"})


def _last_line(exc: BaseException) -> str:
    # OpenVINO's messages start with the C++ source line that threw; the cause is last.
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def without_final_upsample(model: Any) -> Any | None:
    """``model`` up to its last layer when that is a plain bilinear upsample, else None.

    That layer is CANet's last (logits at 1/8 of the input, upsampled with
    align_corners=False); a graph ending otherwise runs whole.
    """
    import openvino as ov

    last = model.get_results()[0].input_value(0).get_node()
    if last.get_type_name() != "Interpolate" or len(model.get_results()) != 1:
        return None
    attrs = last.get_attributes()
    pads = list(attrs.get("pads_begin", [])) + list(attrs.get("pads_end", []))
    if (attrs.get("mode") not in _UPSAMPLE_MODES or attrs.get("antialias")
            or attrs.get("coordinate_transformation_mode") not in _HALF_PIXEL or any(pads)):
        return None
    source, result = last.input_value(0).get_partial_shape(), last.get_output_partial_shape(0)
    if source.is_dynamic or len(source) != 4 or list(source)[:2] != list(result)[:2]:
        return None
    return ov.Model([last.input_value(0)], model.get_parameters(),
                    "canet_without_final_upsample")

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

"""Engine results, errors, device selection and stage timing (torch only where CUDA is asked)."""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import CanetError

if TYPE_CHECKING:
    import torch

# The stages the engine reports to StageClock, in order (docs/performance.md).
STAGES = ("preprocess", "model", "upsample_argmax", "colour", "overlay", "confidence")


class EngineError(CanetError, RuntimeError):
    """The engine cannot be built or cannot run what was asked; the message says why."""


def choose(value: str, allowed: tuple[str, ...], what: str) -> str:
    """Return ``value`` normalised if it is one of ``allowed``; EngineError names them if not."""
    text = str(value).strip().lower()
    if text not in allowed:
        raise EngineError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    return text


@dataclass
class SegmentationResult:
    labels: np.ndarray                      # HxW uint8 (uint16 past 255 classes)
    color: np.ndarray | None = None         # HxWx3 uint8 RGB
    overlay: np.ndarray | None = None       # HxWx3 uint8, the input frame's channel order
    confidence: np.ndarray | None = None    # HxW uint8, round(255 * max softmax)


@dataclass(frozen=True)
class Request:
    order: str
    color: bool
    overlay: bool
    confidence: bool
    alpha: float


OUTPUT_NAMES = ("labels", "color", "overlay", "confidence")


def output_layout(out_hw: tuple[int, int], label_dtype: Any
                  ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """(shape, dtype) of each output at ``out_hw``: what ``infer(into=...)`` takes."""
    height, width = out_hw
    u8 = np.dtype(np.uint8)
    return {"labels": ((height, width), np.dtype(label_dtype)), "color": ((height, width, 3), u8),
            "overlay": ((height, width, 3), u8), "confidence": ((height, width), u8)}


def check_alpha(value: float) -> float:
    """Return the overlay alpha as a float in [0, 1]; EngineError if it is not."""
    alpha = float(value)
    if not 0.0 <= alpha <= 1.0:
        raise EngineError(f"overlay alpha must be in [0, 1], got {value!r}")
    return alpha


def place(result: SegmentationResult, into: Mapping[str, np.ndarray] | None
          ) -> SegmentationResult:
    """Return ``result`` with each output asked for in ``into`` living in that array.

    Outputs the engine wrote there in place stay as they are; others are copied in. An
    array of another shape or dtype than the output is an EngineError (nothing copied).
    """
    if not into:
        return result
    unknown = sorted(set(into) - set(OUTPUT_NAMES))
    if unknown:
        raise EngineError(f"into: unknown output(s) {unknown}; use {', '.join(OUTPUT_NAMES)}")
    pairs = [(name, getattr(result, name), into[name]) for name in OUTPUT_NAMES
             if name in into and getattr(result, name) is not None]
    for name, made, target in pairs:
        if made.shape != target.shape or made.dtype != target.dtype:
            raise EngineError(f"into[{name!r}] is {target.shape} {target.dtype}; this frame's "
                              f"{name} are {made.shape} {made.dtype}")
    for name, made, target in pairs:
        if made.ctypes.data != target.ctypes.data or made.strides != target.strides:
            np.copyto(target, made)
        setattr(result, name, target)
    return result


class Placed:
    """A handle whose result lands in ``into`` (see :func:`place`) once it is collected."""

    def __init__(self, handle: Any, into: Mapping[str, np.ndarray]):
        self._handle, self._into = handle, into

    def done(self) -> bool:
        return self._handle.done()

    def result(self) -> SegmentationResult:
        return place(self._handle.result(), self._into)


class Done:
    """A finished CPU result in the shape of ``runners.InferenceHandle``."""

    def __init__(self, result: SegmentationResult):
        self._result = result

    def done(self) -> bool:
        return True

    def result(self) -> SegmentationResult:
        return self._result


class StageClock:
    """Wall time per stage on the host: ``mark(stage)`` ends ``stage`` and starts the next."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = self.times.get(stage, 0.0) + (now - self._last) * 1000.0
        self._last = now

    def restart(self) -> None:
        self._last = time.perf_counter()

    def result(self) -> dict[str, float]:
        return dict(self.times)


class CudaStageClock(StageClock):
    """Stage times from CUDA events on the stream that is current at each ``mark``."""

    def __init__(self) -> None:
        import torch

        super().__init__()
        self._torch = torch
        self._events: list[tuple[str, Any, Any]] = []
        self._start: Any = None

    def restart(self) -> None:
        self._start = self._torch.cuda.Event(enable_timing=True)
        self._start.record()

    def mark(self, stage: str) -> None:
        end = self._torch.cuda.Event(enable_timing=True)
        end.record()
        self._events.append((stage, self._start, end))
        self._start = end

    def result(self) -> dict[str, float]:
        for stage, start, end in self._events:
            end.synchronize()
            self.times[stage] = self.times.get(stage, 0.0) + start.elapsed_time(end)
        self._events.clear()
        return dict(self.times)


def cpu_name() -> str:
    """Return the CPU model string from /proc/cpuinfo (Linux), else platform's answer."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine() or "cpu"


# Device nodes a CUDA (or ROCm, which torch also calls "cuda") GPU needs: desktop and
# server drivers, Jetson's integrated GPU, WSL2's paravirtual GPU, AMD's KFD.
_GPU_NODES = ("/dev/nvidia[0-9]*", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu", "/dev/dxg",
              "/dev/kfd")


def no_gpu_present() -> bool:
    """Return True when this machine certainly has no GPU torch could use: no device node.

    Lets ``device="auto"`` settle on the CPU without importing torch (seconds). When a
    node exists torch decides, so a driver without a usable GPU is still handled.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    return not any(glob.glob(pattern) for pattern in _GPU_NODES)


def resolve_device(spec: str) -> torch.device:
    """Map "auto" | "cpu" | "cuda" | "cuda:N" -> torch.device; never fall back silently."""
    import torch

    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
            else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        try:
            device = torch.device(text)
        except RuntimeError:
            raise EngineError(f"bad device {spec!r}; use 'cuda' or 'cuda:N'") from None
        if not torch.cuda.is_available():
            raise EngineError(f"device {spec!r} was asked for but CUDA is not available "
                              f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                              "use device='cpu' or device='auto'")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise EngineError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA "
                              "device(s) present")
        return torch.device("cuda", index)
    raise EngineError(f"unknown device {spec!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")

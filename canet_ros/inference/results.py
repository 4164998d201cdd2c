"""Engine results, errors and device selection."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class EngineError(RuntimeError):
    """The engine cannot be built or cannot run what was asked; the message says why."""


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


def resolve_device(spec: str) -> torch.device:
    """Map "auto" | "cpu" | "cuda" | "cuda:N" -> torch.device; never fall back silently."""
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

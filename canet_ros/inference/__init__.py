"""Real-time CANet inference: frames in, label maps out. Never imports ROS.

Importing this package loads neither torch nor ONNX Runtime: a CPU engine whose ONNX
export is cached is built without torch (see ``engine``), so a node is up in seconds.
"""
from .engine import EngineError, SegmentationEngine, SegmentationResult
from .results import cpu_name, resolve_device

__all__ = ["EngineError", "InferenceHandle", "SegmentationEngine", "SegmentationResult",
           "cpu_name", "resolve_device"]


def __getattr__(name: str):  # InferenceHandle lives with the CUDA pipeline (torch)
    if name == "InferenceHandle":
        from .runners import InferenceHandle

        return InferenceHandle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

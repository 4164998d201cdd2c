"""Real-time CANet inference: frames in, label maps out. Never imports ROS."""
from .engine import (
    EngineError,
    InferenceHandle,
    SegmentationEngine,
    SegmentationResult,
    cpu_name,
    resolve_device,
)

__all__ = ["EngineError", "InferenceHandle", "SegmentationEngine", "SegmentationResult",
           "cpu_name", "resolve_device"]

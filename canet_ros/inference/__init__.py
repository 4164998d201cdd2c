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

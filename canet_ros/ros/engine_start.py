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

"""The node's engine start: how a failure becomes one FATAL line (``StartupError``).

The engine is made once, after the parameters passed; torch is imported only here, and
only where the CPU export cache cannot serve the start.
"""
from __future__ import annotations

from typing import Any, Callable

from canet_ros.errors import TORCH_PACKAGES, missing_package, out_of_memory

__all__ = ["EngineFactory", "LOWER_FOR_MEMORY", "StartupError", "default_engine_factory",
           "load_engine"]

# What an operator can lower when memory runs out (named in the FATAL or ERROR line).
LOWER_FOR_MEMORY = ("the resolution parameter",)
EngineFactory = Callable[..., Any]


class StartupError(RuntimeError):
    """The node cannot start; the message is what the user needs to fix."""


def default_engine_factory(*args: Any, **kwargs: Any) -> Any:
    """Build the SegmentationEngine; a first start exports in a child process."""
    # Imported here, after the parameters passed: torch takes seconds to load.
    from canet_ros.inference import SegmentationEngine

    # A first start exports in a child: the node never maps torch's ~0.6 GB (performance.md).
    return SegmentationEngine(*args, **{"export_in_child": True, **kwargs})


def load_engine(factory: EngineFactory, cfg: Any, colors: Any) -> Any:
    """Build the engine ``cfg`` (a NodeConfig) asks for; any refusal is a StartupError."""
    try:
        return factory(cfg.checkpoint, backbone=cfg.backbone, device=cfg.device,
                       precision=cfg.precision, resolution=cfg.resolution,
                       output_size=cfg.output_size, overlay_alpha=cfg.overlay_alpha,
                       class_colors=colors)
    # EngineError and CheckpointError are RuntimeErrors; naming them would import torch.
    # Out of memory (a MemoryError, or torch that cannot map under a ulimit) is one FATAL
    # line saying so, not a traceback.
    except Exception as exc:
        missing = _missing_package(exc)
        oom = out_of_memory(exc, LOWER_FOR_MEMORY)
        if missing is None and oom is None and not isinstance(
                exc, (RuntimeError, ValueError, OSError)):
            raise
        raise StartupError(missing or oom or str(exc)) from exc


def _missing_package(exc: BaseException) -> str | None:
    """Say which package a start lacks (torch on a first start), as the CLI does; else None."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    missing = missing_package(exc)
    if missing is not None and exc.name in TORCH_PACKAGES:
        # Without torch the node starts only where it need not read the checkpoint.
        missing += ("; without them the node starts only on the CPU (ONNX Runtime or "
                    "OpenVINO), from a checkpoint whose ONNX export is cached")
    return missing

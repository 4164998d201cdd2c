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

"""What the segmentation node says about itself: its ready line and its diagnostics.

Both name the checkpoint by a content hash as well as by path: two files at the same
path (a retrained model copied over the old one) otherwise read alike in a log.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from canet_ros.inference import kernels
from canet_ros.inference.onnx_runtime import file_digest
from canet_ros.ros.params import NodeConfig
from canet_ros.ros.stats import StatsReport

# Hex digits of the checkpoint's SHA-256 shown: `sha256sum FILE | cut -c1-12` gives them.
SHOWN_HEX = 12


def checkpoint_digest(path: Any, known: Optional[str] = None) -> str:
    """Return the first SHA-256 hex digits of the checkpoint the engine loaded, or 'unknown'.

    ``known``: the engine's own digest of the file (a cached start hashed it already; a
    ResNet101 file takes ~0.4 s), else the file is hashed here once.
    """
    if known:
        return known[:SHOWN_HEX]
    if path is None:
        return "unknown"
    try:
        return file_digest(Path(path))[:SHOWN_HEX]
    except OSError:  # gone since it loaded: the node runs on what it read
        return "unknown"


def ready_message(cfg: NodeConfig, engine: Any, digest: str, input_topic: str,
                  input_note: str, outputs: Sequence[str], colors: Any) -> str:
    """Return the INFO line that says what this start chose and where it reads and writes."""
    width, height = engine.resolution
    runs = engine.precision_label
    if kernels.loops_for(engine.device_type) == "numba":
        runs += ", numba loops"
    # The checkpoint as given: a params file that never reached the node shows here.
    source = "the bundled model" if cfg.checkpoint == "default" else cfg.checkpoint
    return (f"ready: CANet {engine.backbone} ({engine.num_classes} classes, "
            f"{engine.class_set.name}) from {source} (sha256 {digest}) at {width}x{height} on "
            f"{engine.device_name} ({runs}); input {input_topic} ({cfg.input_transport}, "
            f"{cfg.qos_reliability}{input_note}); outputs {', '.join(outputs)} at "
            + ("the input frame's size" if cfg.output_size == "input" else
               f"the network's size ({width}x{height})")
            + (f"; class colours from {colors.path}" if colors else ""))


def static_key_values(engine: Any, digest: str, input_topic: str) -> Dict[str, str]:
    """Return the diagnostics' values that stay the same all the node's life."""
    width, height = engine.resolution
    return {"backbone": str(engine.backbone), "resolution": f"{width}x{height}",
            "device": str(engine.device_name),
            "precision": str(engine.precision), "runtime": str(engine.runtime),
            "cpu_loops": str(kernels.loops_for(engine.device_type) or "none"),
            "input_topic": input_topic, "output_size": str(engine.output_size),
            "checkpoint": str(engine.checkpoint_path), "checkpoint_sha256": digest,
            "num_classes": str(engine.num_classes), "class_set": str(engine.class_set.name)}


def diagnostic_array(name: str, hardware_id: str, report: StatsReport, problems: List[str],
                     header: Any) -> DiagnosticArray:
    """One DiagnosticStatus: WARN naming ``problems`` first, else OK; values all strings."""
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK, name=name,
        message=f"{'; '.join(problems)}: {report.summary()}" if problems else report.summary(),
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in report.key_values()])
    return DiagnosticArray(header=header, status=[status])

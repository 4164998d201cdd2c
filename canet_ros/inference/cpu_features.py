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

"""What this CPU can do natively: the instruction-set flags that decide bf16 and int8.

Read from ``/proc/cpuinfo`` (Linux; no runtime imported, so the probe is free at
start-up). Elsewhere, OpenVINO's own view of the CPU (``OPTIMIZATION_CAPABILITIES``)
stands in when it is installed; without either, only fp32 is offered.
"""
from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["BF16_FLAGS", "CPU_PRECISIONS", "INT8_FLAGS", "cpu_flags", "cpu_precisions",
           "relevant_features"]

# A precision counts as supported only where the CPU has dot-product instructions for
# it; without them runtimes emulate it in fp32, slower than plain fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
CPU_PRECISIONS = ("fp32", "bf16", "int8")
_SHOWN = ("avx2", "avx512f", *BF16_FLAGS, *INT8_FLAGS, "amx_tile", "amx_fp16")


def _proc_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def _openvino_flags() -> frozenset[str]:
    try:
        from .openvino_runner import core  # the process's one Core (why: that module)

        caps = set(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # not installed, or no CPU plugin: fp32 only
        return frozenset()
    # OpenVINO names precisions, not instructions: map back to one flag each.
    return frozenset((["avx512_bf16"] if "BF16" in caps else [])
                     + (["avx512_vnni"] if "INT8" in caps else []))


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Return the CPU's feature flags (lower case, as Linux names them)."""
    flags = _proc_flags()
    return flags if flags is not None else _openvino_flags()


def cpu_precisions(flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """Precisions this CPU runs natively, in :data:`CPU_PRECISIONS` order (fp32 always)."""
    flags = cpu_flags() if flags is None else flags
    found = ["fp32"]
    if flags & set(BF16_FLAGS):
        found.append("bf16")
    if flags & set(INT8_FLAGS):
        found.append("int8")
    return tuple(found)


def relevant_features(flags: frozenset[str] | None = None) -> list[str]:
    """Return the flags that matter to CANet's CPU speed, for reports."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in _SHOWN if f in flags]

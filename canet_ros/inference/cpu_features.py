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
start-up). Elsewhere (Windows, macOS) two views stand in:

* numpy's own CPUID probe (``__cpu_features__``, what its SIMD dispatch reads, with the
  OS's AVX-512 state checked): AVX2, AVX-512F, AVX-512 VNNI and (numpy >= 2) AVX-512 BF16.
  It has no AVX-VNNI nor AMX entries, so a CPU whose int8 instructions are only those
  (client Alder Lake and later without AVX-512) is offered no int8 there: a missed
  speed-up, never a wrong claim;
* OpenVINO's ``OPTIMIZATION_CAPABILITIES``, for bf16 only: it lists BF16 only where the
  CPU runs it, but INT8 on every x86 CPU (AVX2 included), so INT8 is no evidence of VNNI.

Without either, only fp32 is offered.
"""
from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["BF16_FLAGS", "CPU_PRECISIONS", "INT8_FLAGS", "cpu_flags", "cpu_precisions",
           "relevant_features"]

# A precision counts as supported only where the CPU has dot-product instructions for it.
# bf16 without them: OpenVINO runs f32 and calls it bf16. int8 without them (AVX2 alone)
# does run, ~0.6x fp32's time, but AVX2's u8*s8 multiply-add (vpmaddubsw) saturates at
# int16: labels agreed with fp32 on 99.36 % of pixels on an AVX2-only EPYC, under the
# 99.5 % rule (docs/performance.md, "The accuracy rule, measured").
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


# numpy's __cpu_features__ names -> the Linux flag names used here.
_NUMPY_NAMES = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni",
                "AVX512BF16": "avx512_bf16"}


def _numpy_features() -> dict[str, bool]:
    try:  # numpy >= 2; numpy 1.x keeps it in numpy.core
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:  # a numpy without the probe: no claims from it
            return {}
    return dict(__cpu_features__)


def _numpy_flags() -> frozenset[str]:
    features = _numpy_features()
    return frozenset(flag for name, flag in _NUMPY_NAMES.items() if features.get(name))


def _openvino_flags() -> frozenset[str]:
    try:
        from .openvino_runner import core  # the process's one Core (why: that module)

        caps = set(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # not installed, or no CPU plugin: no claims from it
        return frozenset()
    # Its INT8 is listed on any x86 CPU (module docstring): only BF16 says something.
    return frozenset(["avx512_bf16"] if "BF16" in caps else [])


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Return the CPU's feature flags (lower case, as Linux names them)."""
    flags = _proc_flags()
    return flags if flags is not None else _numpy_flags() | _openvino_flags()


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

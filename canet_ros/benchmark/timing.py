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

"""Clocks for the benchmark: interleaved timing, how many rounds fit, the matmul reference.

The default run is meant to take about a minute on a small, busy CPU, so the number of
timed rounds and the reference matmul's size follow from what this machine measures.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..progress import progress as progress_bar

TIMING_BUDGET_S = 30.0  # timed rounds of the default run
MIN_ITERS, MAX_ITERS = 10, 50
MATMUL_TARGET_S = 0.25  # one reference multiply at the chosen size takes at least this
MATMUL_MAX = 4096


def say(text: str, enabled: bool = True) -> None:
    """One status line on stderr: long silent phases say what they are doing."""
    if enabled:
        print(f"canet benchmark: {text}", file=sys.stderr, flush=True)


def torch_module() -> Any | None:
    """Return torch, or None where it is not installed (a cached export runs without it).

    A torch that is installed but fails to import (a missing library of its own) raises.
    """
    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        return None
    return torch


def sync(device_type: str) -> None:
    if device_type == "cuda":
        import torch

        torch.cuda.synchronize()


def time_calls(fn: Callable[[], Any], iters: int, warmup: int, device_type: str,
               desc: str, progress: bool = True) -> np.ndarray:
    """Wall-clock ms of ``iters`` calls, each finished (GPU synced) before its clock stops."""
    return time_interleaved({desc or "call": fn}, iters, warmup, device_type,
                            progress)[desc or "call"]


def time_interleaved(fns: dict[str, Callable[[], Any]], iters: int, warmup: int,
                     device_type: str, progress: bool = True,
                     into: dict[str, list[float]] | None = None) -> dict[str, np.ndarray]:
    """Time several functions, taking turns within each iteration.

    On a shared, noisy machine load drifts, and turns make it hit all of them alike.
    ``into`` receives each time as it is taken, so an interrupted run keeps what it has.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device_type)
    times = into if into is not None else {}
    for name in fns:
        times.setdefault(name, [])
    bar = progress_bar(range(iters), desc=" / ".join(fns), unit="iter", file=sys.stderr,
                       disable=not progress, leave=False)
    for _ in bar:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync(device_type)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: np.asarray(t) for name, t in times.items()}


def complete_rounds(times: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Return the rounds every function finished (an interrupt can stop one mid-round)."""
    done = min((len(t) for t in times.values()), default=0)
    return {name: np.asarray(t[:done]) for name, t in times.items()} if done else {}


def auto_iters(round_s: float, budget_s: float = TIMING_BUDGET_S) -> int:
    """Return timed rounds that fit ``budget_s`` when one round takes ``round_s``."""
    fit = int(budget_s / round_s) if round_s > 0 else MAX_ITERS
    return max(MIN_ITERS, min(MAX_ITERS, fit))


def _matmul_ms(device_type: str, size: int, iters: int) -> float:
    import torch

    a = torch.randn(size, size, device=device_type)
    b = torch.randn(size, size, device=device_type)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the reference is true fp32
    try:
        return float(np.median(time_calls(lambda: a @ b, iters, 1, device_type, "matmul",
                                          progress=False)))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def matmul_size_for(device_type: str, largest: int = MATMUL_MAX,
                    target_s: float = MATMUL_TARGET_S) -> int:
    """Return the smallest power-of-two size from 512 whose multiply takes ``target_s`` here.

    Large enough to run at the machine's full matmul rate, small enough that a slow or
    busy CPU does not spend minutes on the reference.
    """
    size = 512
    while size < largest and _matmul_ms(device_type, size, 1) / 1000.0 < target_s:
        size *= 2
    return min(size, largest)


def matmul_gflops(device_type: str, size: int = MATMUL_MAX, iters: int = 3) -> float:
    """fp32 matmul rate of ``size`` x ``size`` matrices in torch (2 FLOPs per multiply-add)."""
    return 2.0 * size ** 3 / (_matmul_ms(device_type, size, iters) / 1000.0) / 1e9

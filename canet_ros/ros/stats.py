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

"""Frame accounting for the segmentation node: FPS, drops and latency percentiles.

Pure Python and thread-safe: the subscription callback, the inference worker and
the stats timer all touch it from different threads. Each report() closes a window;
rates and percentiles describe that window, the totals the node's whole life. Latency
percentiles are exact up to ``max_samples`` frames a window and, beyond, computed on
a uniform sample of the whole window (``Reservoir``), so memory stays bounded.
"""
from __future__ import annotations

import math
import random
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

LatencyPair = Optional[Tuple[float, float]]  # (p50, p99) in milliseconds; None = no samples
# unstamped / stamp_out_of_range: published frames whose stamp gave no latency sample (a
# zero stamp; one too far from the node's clock to be a latency, see stamp_check.py).
COUNTERS = ("received", "published", "dropped", "malformed", "idle", "failed", "unstamped",
            "stamp_out_of_range")
# 4096 samples: p99 of a larger window is then read within about +-0.5 percentile points
# of rank (3 standard errors), p50 within +-2.5, in 32 KiB per latency series.
MAX_SAMPLES = 4096
RESERVOIR_SEED = 0


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the q-th percentile, interpolated linearly as numpy does; nan when empty."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _p50_p99(samples: Sequence[float]) -> LatencyPair:
    if not samples:
        return None
    return percentile(samples, 50.0) * 1e3, percentile(samples, 99.0) * 1e3


def _fmt_ms(pair: LatencyPair) -> str:
    return "n/a" if pair is None else f"{pair[0]:.1f}/{pair[1]:.1f} ms"


@dataclass(frozen=True)
class StatsReport:
    """One window. ``window`` and ``totals`` hold the COUNTERS."""

    period_s: float
    window: Dict[str, int]
    totals: Dict[str, int]
    stamp_latency_ms: LatencyPair      # header stamp -> publish
    callback_latency_ms: LatencyPair   # subscription callback -> publish
    extra: Dict[str, str] = field(default_factory=dict)

    def rate(self, counter: str) -> float:
        return self.window[counter] / self.period_s if self.period_s > 0 else 0.0

    @property
    def input_fps(self) -> float:
        return self.rate("received")

    @property
    def output_fps(self) -> float:
        return self.rate("published")

    @property
    def healthy(self) -> bool:
        """Return False when frames were malformed or inference failed in the window."""
        return self.window["malformed"] == 0 and self.window["failed"] == 0

    def summary(self) -> str:
        w = self.window
        # Frames in but none out reads as a stuck node unless the line says why. "Matched":
        # a reader of incompatible QoS is listed by `ros2 topic info` but never served.
        idle = f", idle {w['idle']} (no matched subscribers)" if w["idle"] else ""
        return (f"in {self.input_fps:.1f} fps, out {self.output_fps:.1f} fps, dropped "
                f"{w['dropped']} (total {self.totals['dropped']}){idle}, malformed "
                f"{w['malformed']}, failed {w['failed']}, latency stamp->publish p50/p99 "
                f"{self._stamp_text()}, callback->publish "
                f"{_fmt_ms(self.callback_latency_ms)}")

    def _stamp_text(self) -> str:
        w, text = self.window, _fmt_ms(self.stamp_latency_ms)
        if self.stamp_latency_ms is None and w["unstamped"] and not w["stamp_out_of_range"]:
            return f"{text} (unstamped)"
        notes = [f"{w['unstamped']} unstamped"] if w["unstamped"] else []
        if w["stamp_out_of_range"]:
            notes.append(f"{w['stamp_out_of_range']} stamps out of range")
        return f"{text} ({', '.join(notes)})" if notes else text

    def key_values(self) -> List[Tuple[str, str]]:
        """Every value as a string: diagnostic_msgs/KeyValue carries only strings."""
        pairs = [("input_fps", f"{self.input_fps:.2f}"), ("output_fps", f"{self.output_fps:.2f}"),
                 ("window_s", f"{self.period_s:.2f}")]
        pairs += [(f"{name}_window", str(self.window[name])) for name in COUNTERS]
        pairs += [(f"{name}_total", str(self.totals[name])) for name in COUNTERS]
        for label, pair in (("stamp_to_publish", self.stamp_latency_ms),
                            ("callback_to_publish", self.callback_latency_ms)):
            pairs.append((f"{label}_p50_ms", "n/a" if pair is None else f"{pair[0]:.2f}"))
            pairs.append((f"{label}_p99_ms", "n/a" if pair is None else f"{pair[1]:.2f}"))
        pairs += sorted(self.extra.items())
        return pairs


class Reservoir:
    """A uniform random sample of at most ``capacity`` of the values added since clear().

    Holds every value until full, then keeps each of the n values seen with the same
    probability capacity / n (Vitter's algorithm R). Reseeded on clear(), so a window's
    sample depends only on that window's values: reports are reproducible. Not locked:
    FrameStats calls it under its own lock.
    """

    def __init__(self, capacity: int, seed: int = RESERVOIR_SEED) -> None:
        if capacity < 1:
            raise ValueError(f"reservoir capacity must be at least 1, got {capacity}")
        self._capacity, self._seed = capacity, seed
        self._values = array("d")
        self._rng = random.Random(seed)
        self.seen = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self._values) < self._capacity:
            self._values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self._capacity:
            self._values[slot] = value

    def values(self) -> List[float]:
        return list(self._values)

    def clear(self) -> None:
        self._values = array("d")
        self._rng.seed(self._seed)
        self.seen = 0


class FrameStats:
    """Counters plus bounded latency samples, safe to update from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_samples: int = MAX_SAMPLES, seed: int = RESERVOIR_SEED) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._window = dict.fromkeys(COUNTERS, 0)
        # Sampled over the whole window, not its last frames: stats_period may be an hour.
        self._stamp = Reservoir(max_samples, seed)
        self._callback = Reservoir(max_samples, seed)
        self._window_start = clock()

    def count(self, counter: str, n: int = 1) -> None:
        if counter not in self._totals:
            raise KeyError(f"unknown counter {counter!r}; use one of {', '.join(COUNTERS)}")
        with self._lock:
            self._totals[counter] += n
            self._window[counter] += n

    def published(self, callback_latency_s: float,
                  stamp_latency_s: Optional[float] = None) -> None:
        """One frame's outputs went out; latencies in seconds (stamp one may be unknown)."""
        with self._lock:
            self._totals["published"] += 1
            self._window["published"] += 1
            self._callback.add(callback_latency_s)
            if stamp_latency_s is not None:
                self._stamp.add(stamp_latency_s)

    def totals(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._totals)

    def life_summary(self, seconds: float) -> str:
        """Return the node's whole-life counts, for its last line."""
        t = self.totals()
        return (f"received {t['received']}, published {t['published']}, dropped "
                f"{t['dropped']}, idle {t['idle']}, malformed {t['malformed']}, failed "
                f"{t['failed']} over {seconds:.1f} s")

    def report(self, extra: Optional[Dict[str, str]] = None) -> StatsReport:
        """Summarise the window since the last report and start a new one."""
        with self._lock:
            now = self._clock()
            report = StatsReport(
                period_s=max(now - self._window_start, 0.0), window=dict(self._window),
                totals=dict(self._totals), stamp_latency_ms=_p50_p99(self._stamp.values()),
                callback_latency_ms=_p50_p99(self._callback.values()), extra=dict(extra or {}))
            self._window = dict.fromkeys(COUNTERS, 0)
            self._stamp.clear()
            self._callback.clear()
            self._window_start = now
        return report

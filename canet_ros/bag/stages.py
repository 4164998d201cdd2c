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

"""The three threads of a segment-bag run: hand-over between reader, engine and writer.

A reader thread decodes, the main thread runs the engine, a writer thread serialises and
writes. Bounded queues keep memory flat; torch and OpenCV release the GIL, so decoding and
writing overlap inference.
"""
from __future__ import annotations

import contextlib
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np

from .errors import BagError
from .reader import describe_exception
from .report import RunStats

END = object()
POLL_S = 0.1


@dataclass
class FrameItem:
    index: int  # 0-based among the messages read
    position: int | None  # 0-based on the topic in the intact bag, None where unknown
    timestamp: int
    header: Any
    frame: np.ndarray | None
    order: str
    t_read: float
    raw: bytes | None = None  # ROS 2 input to copy verbatim
    copy_msg: Any = None  # ROS 1 input to copy, converted to Humble
    gt: np.ndarray | None = None
    gt_stamp: int = 0
    # Why the frame has no usable ground truth: ("missing" | "unusable", reason). The writer
    # counts it, so frames read but never written (an interrupted run) are not counted.
    gt_note: tuple[str, str] | None = None


@dataclass
class Skipped:
    index: int


@dataclass
class Failure:
    message: str


def put_until(q: queue.Queue, item: Any, alive: threading.Event) -> bool:
    """Block until queued, or give up once ``alive`` is cleared (the other side is gone)."""
    while alive.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


class Feed:
    """Decoded frames for the engine.

    The reader reserves a slot before it reads a message, so at most ``size`` frames are
    decoded ahead: memory stays flat and a frame's latency counts only the frames queued in
    front of it.
    """

    def __init__(self, size: int):
        self.queue: queue.Queue = queue.Queue()
        self.slots = threading.Semaphore(max(1, size))
        self.alive = threading.Event()
        self.alive.set()

    def reserve(self) -> bool:
        while self.alive.is_set():
            if self.slots.acquire(timeout=POLL_S):
                return True
        return False

    def put(self, item: Any) -> None:
        self.queue.put(item)

    def get(self) -> Any:
        item = self.queue.get(timeout=POLL_S)
        if isinstance(item, (FrameItem, Skipped)):
            self.slots.release()
        return item


@contextlib.contextmanager
def sigint_deferred(what: str = "canet segment-bag: finishing the output bag"
                    ) -> Iterator[None]:
    """While outputs are being finished, a second Ctrl-C must not leave them broken."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(*_: object) -> None:
        print(f"{what}, please wait", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class WriterThread(threading.Thread):
    """Owns the output bag (sqlite3 needs one thread), the metrics and the video."""

    def __init__(self, out: Any, copy_input: bool, q_out: queue.Queue, stats: RunStats,
                 video: Any):
        super().__init__(name="segment-bag-writer", daemon=True)
        self.out, self.copy_input, self.q_out = out, copy_input, q_out
        self.stats, self.video = stats, video
        self.ready = threading.Event()
        self.alive = threading.Event()
        self.alive.set()
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.out.create()
            self.ready.set()
            while True:
                entry = self.q_out.get()
                if entry is END:
                    break
                self._write(*entry)
        except Exception as exc:
            self.error = (str(exc) if isinstance(exc, BagError) else
                          f"{self.out.path}: writing failed ({describe_exception(exc)})")
        finally:
            self.alive.clear()
            self.ready.set()
            try:
                self.out.close()
            except BagError as exc:
                self.error = self.error or str(exc)
            if self.video is not None:
                self.video.close()

    def _write(self, item: FrameItem, result: Any) -> None:
        self.out.write_frame(item.timestamp, item.header, result.labels, result.color,
                             result.overlay, item.order)
        if self.copy_input:
            self.out.write_input(item.timestamp, item.raw, item.copy_msg)
        stats = self.stats
        if item.gt_note is not None:
            kind, reason = item.gt_note
            note = stats.gt_frame_missing if kind == "missing" else stats.gt_frame_problem
            note(item.position, item.gt_stamp, reason)
        if item.gt is not None and stats.confusion is not None:
            if item.gt.shape != result.labels.shape:
                stats.gt_frame_problem(item.position, item.gt_stamp,
                                       f"size {item.gt.shape[1]}x{item.gt.shape[0]} differs "
                                       f"from the frame's")
            else:
                stats.confusion.update(result.labels, item.gt)
                stats.gt_scored += 1
        if self.video is not None:
            self.video.write(result.overlay, item.order, item.timestamp)
        stats.frames += 1
        stats.last_timestamp = item.timestamp
        stats.latency_s.append(perf_counter() - item.t_read)

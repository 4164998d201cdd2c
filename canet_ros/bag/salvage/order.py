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

"""The order rosbags reads an intact storage file in, and positions on a topic in it.

rosbags reads a file in receive-time order, whatever order the recorder wrote it in (a
use_sim_time recording whose clock went back, a looped source): MCAP chunks merged by
time, ties to the chunk that comes first in the file, then to the order inside the chunk;
ROS 1 index entries merged by time, ties to the lower connection, then to the earlier chunk
and record; sqlite3 ``ORDER BY timestamp``, ties in row-id order (the timestamp index).
The salvage readers give each recovered message a sort key in that order, so they read
a damaged file as rosbags reads the intact one.

A lost message is a span of keys it may have: one key where its time is known, the
receive-time range of its chunk where only that is known. A recovered message's position
on its topic (its index in the intact bag) is the recovered messages before it plus the
lost ones whose span ends before it; it is unknown (None) while a span holding lost
messages of the topic may contain it, and after a span whose count of them is unknown.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

LOW: tuple = (float("-inf"),)  # a span open to the start of the file's times
HIGH: tuple = (float("inf"),)  # ... or to the end
LAST = 1 << 62  # above any record index: a span's end sorts after its chunk's messages


class Span(NamedTuple):
    """Keys a lost message (or several) may have, and how many of them are on the topic."""

    lo: tuple
    hi: tuple
    count: int | None  # None: the file no longer says


class Positions:
    """Positions in the intact bag of recovered messages handed over in key order."""

    def __init__(self, spans: Iterable[Span]):
        kept = [s for s in spans if s.count != 0]
        self._starts = sorted(s.lo for s in kept)
        self._ends = sorted(((s.hi, s.count) for s in kept), key=lambda end: end[0])
        self._started = 0  # spans starting before the current key
        self._ended = 0  # spans ending before it (a subset: lo <= hi)
        self._lost: int | None = 0  # lost messages of the topic in the ended spans
        self._recovered = 0

    def advance(self, key: tuple) -> int | None:
        """Return the next recovered message's position; ``key`` sorts it (keys never fall)."""
        while self._started < len(self._starts) and self._starts[self._started] < key:
            self._started += 1
        while self._ended < len(self._ends) and self._ends[self._ended][0] < key:
            count = self._ends[self._ended][1]
            self._lost = None if self._lost is None or count is None else self._lost + count
            self._ended += 1
        position = (None if self._lost is None or self._started > self._ended
                    else self._recovered + self._lost)
        self._recovered += 1
        return position


def between(before: int | None, after: int | None,
            ordered: bool) -> tuple[int | None, int | None]:
    """First and last time of a lost stretch whose own times are unknown (None: open).

    ``before`` and ``after`` are the known times just before and after it in the file,
    ``ordered`` whether all the file's known times are in the order the file holds them.
    Where the times around it are in order (a recording whose clock did not go back there),
    its messages are taken to lie between them, where the recorder wrote them; at the start
    or end of the file, where only one side is known, only if the whole file is in order
    (a looped recording could have gone back in the part that was lost). Otherwise they
    could lie anywhere, and the span is open at both ends.
    """
    if before is not None and after is not None:
        return (before, after) if before <= after else (None, None)
    return (before, after) if ordered else (None, None)


def in_order(times: Iterable[tuple[int, int]]) -> bool:
    """Whether stretches given as (first, last) time, in file order, never go back."""
    latest = None
    for first, last in times:
        if latest is not None and first < latest:
            return False
        latest = last if latest is None else max(latest, last)
    return True

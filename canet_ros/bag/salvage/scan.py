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

"""What the MCAP and ROS 1 linear scans share.

Both walk a file's records once, keeping in file order the good chunks (with the
(id, time) of each message in them) and the regions that were lost. A topic's messages are
then read back in the order rosbags reads the intact file (salvage/order.py): a k-way merge
over the chunks that reads and decompresses a chunk only when the merge reaches its first
message, so a time-ordered file holds one chunk at a time and a file whose chunks overlap
in time (a looped recording) holds only the overlapping ones. A message's position in its
topic counts the lost messages before it too, so ground truth by index stays paired (None
where the file no longer says how many came before).
"""
from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import BagError
from .damage import Damage, LostRegion, Recovered
from .order import HIGH, LAST, LOW, Positions, Span, between, in_order


@dataclass
class Chunk:
    """A good chunk (or a stray message) to read again in the message pass."""

    offset: int
    messages: list[tuple[int, int]] = field(default_factory=list)  # (channel id, time)


class ChunkScan:
    """A file scanned once at construction; subclasses parse their format's records.

    Subclasses set ``KIND``/``METHOD`` (for the damage report), their own tables before
    calling ``super().__init__``, and implement ``_scan``, ``_ids`` and ``_chunk_messages``.
    ``TIES_BY_CHANNEL``: whether messages at the same time go in channel order first, as
    rosbags reads ROS 1 (one index per connection, merged); MCAP goes by chunk alone.
    """

    KIND = ""
    METHOD = ""
    TIES_BY_CHANNEL = False

    def __init__(self, path: Path, cause: str):
        self.path = path
        self.damage = Damage(self.KIND, cause, self.METHOD)
        self.counts: Counter[int] = Counter()
        self._order: list[Chunk | LostRegion] = []  # file order, for positions
        self._bad: LostRegion | None = None  # last skipped chunk, awaiting its index
        # rosbag2 reads a file without a message index (an MCAP written without chunks,
        # the "fastwrite" preset) in file order, and rosbags refuses one whose times go back
        self.file_order = False
        self._undefined: LostRegion | None = None  # see account_undefined
        try:
            self._fh: BinaryIO = path.open("rb")
        except OSError as exc:
            raise BagError(f"{path}: cannot read ({exc.strerror or exc})") from None
        self.size = path.stat().st_size
        try:
            self._scan()
        except BaseException:
            self._fh.close()
            raise

    def _scan(self) -> None:
        raise NotImplementedError

    def _ids(self, topic: str) -> set[int]:
        """Channel / connection ids of ``topic``."""
        raise NotImplementedError

    def _chunk_messages(self, entry: Chunk, wanted: set[int]) -> list[tuple[int, int, bytes]]:
        """(time, channel id, raw message) of the ``wanted`` ids in one chunk, in record order."""
        raise NotImplementedError

    def defined_ids(self) -> set[int]:
        """Channel / connection ids whose definition (topic, type) was read."""
        raise NotImplementedError

    def account_undefined(self) -> None:
        """Count the messages read on ids whose definition was lost as lost, topic unknown.

        Their chunks are intact but no topic can be given to them, so each topic's loss is
        unknown, and so are positions after them (``_undefined_spans``). Called again, it
        replaces its earlier count.
        """
        if self._undefined in self.damage.regions:
            self.damage.regions.remove(self._undefined)
        defined = self.defined_ids()
        ids = sorted(c for c, n in self.counts.items() if n and c not in defined)
        self._undefined = None
        if ids:
            count = sum(self.counts[c] for c in ids)
            self._undefined = LostRegion(
                f"{count} messages on {self.KIND} channel(s) {', '.join(f'#{c}' for c in ids)}"
                f" whose definition was lost with the damaged records (topic unknown)",
                messages=count)
            self.damage.regions.append(self._undefined)

    def _read(self, at: int, n: int) -> bytes:
        self._fh.seek(at)
        return self._fh.read(n)

    def _rank(self, channel: int) -> int:
        return channel if self.TIES_BY_CHANNEL else 0

    def _at(self, t: int) -> int:
        """Return the first part of a message's sort key: its time, or 0 to read in file order."""
        return 0 if self.file_order else t

    def _keys(self, index: int, entry: Chunk,
              wanted: set[int]) -> list[tuple[tuple[int, ...], int]]:
        """(sort key, time) of the ``wanted`` messages of the chunk at ``index`` in ``_order``."""
        return [((self._at(t), self._rank(channel), index, i), t)
                for i, (channel, t) in enumerate(entry.messages) if channel in wanted]

    def times(self, topic: str) -> list[int]:
        wanted = self._ids(topic)
        keys = [key for index, entry in enumerate(self._order) if isinstance(entry, Chunk)
                for key in self._keys(index, entry, wanted)]
        return [t for _, t in sorted(keys)]

    def messages(self, topic: str) -> Iterator[Recovered]:
        positions = Positions(self._spans(topic))
        for key, t, raw in self._merged(self._ids(topic)):
            yield Recovered(t, raw, positions.advance(key))

    def _merged(self, wanted: set[int]) -> Iterator[tuple[tuple[int, ...], int, bytes]]:
        """Yield the wanted messages of all good chunks in rosbags' order, reading chunks lazily.

        Each chunk waits in the heap as one entry keyed by its first message (known from
        the scan); only when the merge reaches it is it read again and decompressed, and its
        messages join the heap. Its record index breaks the remaining ties, as the stable
        sort of one chunk's messages does in rosbags.
        """
        heap: list[tuple] = []
        for index, entry in enumerate(self._order):
            if isinstance(entry, Chunk):
                keys = self._keys(index, entry, wanted)
                if keys:
                    heap.append((*min(keys)[0][:3], -1, 0, b""))
        heapq.heapify(heap)
        while heap:
            at, rank, index, i, t, raw = heapq.heappop(heap)
            if i >= 0:
                yield (at, rank, index, i), t, raw
                continue
            found = self._chunk_messages(self._order[index], wanted)  # type: ignore[arg-type]
            found.sort(key=lambda m: (self._at(m[0]), self._rank(m[1])))
            for i, (t, channel, raw) in enumerate(found):
                heapq.heappush(heap, (self._at(t), self._rank(channel), index, i, t, raw))

    def _spans(self, topic: str) -> list[Span]:
        """Where the lost messages of ``topic`` sit in the merge order (salvage/order.py)."""
        top = 1 << 32 if self.TIES_BY_CHANNEL else 0  # the highest rank a lost one may have
        ranges = [_time_range(entry) for entry in self._order]
        ordered = in_order((a, b) for a, b in ranges if a is not None and b is not None)
        spans = self._undefined_spans(top)
        for index, region in enumerate(self._order):
            if not isinstance(region, LostRegion):
                continue
            count = region.lost_on(topic)
            if count == 0:
                continue
            if self.file_order:  # read in file order: its messages sit where it lies
                spans.append(Span((0, 0, index, -1), (0, top, index, LAST), count))
                continue
            stamps = region.timestamps.get(topic) if region.topics is not None else None
            if stamps is not None and len(stamps) == count:
                spans += [Span((t, 0, index, -1), (t, top, index, LAST), 1) for t in stamps]
                continue
            first, last = _time_range(region)
            if first is None or last is None:
                first, last = between(_nearest(ranges, index, -1), _nearest(ranges, index, 1),
                                      ordered)
            spans.append(Span(LOW if first is None else (first, 0, index, -1),
                              HIGH if last is None else (last, top, index, LAST), count))
        return spans

    def _undefined_spans(self, top: int) -> list[Span]:
        """Each message on an id of unknown topic may be one of the topic's: count unknown."""
        defined = self.defined_ids()
        return [Span((self._at(t), 0, index, -1), (self._at(t), top, index, LAST), None)
                for index, entry in enumerate(self._order) if isinstance(entry, Chunk)
                for channel, t in entry.messages if channel not in defined]

    def close(self) -> None:
        self._fh.close()


def by_topic(stamps: dict[str, list[int]], names: dict[int, str]) -> dict[str, list[int]]:
    """Merge a region's times per ``#id`` into times per topic (two ids may share a topic)."""
    out: dict[str, list[int]] = {}
    for key, values in stamps.items():
        out.setdefault(names[int(key[1:])], []).extend(values)
    return {topic: sorted(values) for topic, values in out.items()}


def _nearest(ranges: list[tuple[int | None, int | None]], index: int, step: int) -> int | None:
    """Return the nearest known receive time before (step -1) or after (+1) entry ``index``."""
    index += step
    while 0 <= index < len(ranges):
        first, last = ranges[index]
        if first is not None and last is not None:
            return last if step < 0 else first
        index += step
    return None


def _time_range(region: Chunk | LostRegion) -> tuple[int | None, int | None]:
    """First and last receive time of a chunk, or of a lost region where the file says."""
    if isinstance(region, Chunk):
        times = [t for _, t in region.messages]
        return (min(times), max(times)) if times else (None, None)
    if region.start_ns is not None and region.end_ns is not None:
        # a damaged chunk header can hold anything: a range that ends first says nothing
        ok = region.start_ns <= region.end_ns
        return (region.start_ns, region.end_ns) if ok else (None, None)
    stamps = [t for values in region.timestamps.values() for t in values]
    if not stamps:
        return None, None
    return min(stamps), max(stamps)

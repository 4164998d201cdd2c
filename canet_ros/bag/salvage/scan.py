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
(id, time) of each message in them) and the regions that were lost, then read the
messages of one topic back chunk by chunk; a message's position in its topic counts the
lost messages too, so ground truth by index stays paired (None once a count is unknown).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import BagError
from .damage import Damage, LostRegion, Recovered


@dataclass
class Chunk:
    """A good chunk (or a stray message) to read again in the message pass."""

    offset: int
    messages: list[tuple[int, int]] = field(default_factory=list)  # (channel id, time)


class ChunkScan:
    """A file scanned once at construction; subclasses parse their format's records.

    Subclasses set ``KIND``/``METHOD`` (for the damage report), their own tables before
    calling ``super().__init__``, and implement ``_scan``, ``_ids`` and ``_chunk_messages``.
    """

    KIND = ""
    METHOD = ""

    def __init__(self, path: Path, cause: str):
        self.path = path
        self.damage = Damage(self.KIND, cause, self.METHOD)
        self.counts: Counter[int] = Counter()
        self._order: list[Chunk | LostRegion] = []  # file order, for positions
        self._bad: LostRegion | None = None  # last skipped chunk, awaiting its index
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

    def _chunk_messages(self, entry: Chunk, wanted: set[int]) -> list[tuple[int, bytes]]:
        """(time, raw message) of the ``wanted`` ids in one good chunk, in time order."""
        raise NotImplementedError

    def _read(self, at: int, n: int) -> bytes:
        self._fh.seek(at)
        return self._fh.read(n)

    def times(self, topic: str) -> list[int]:
        wanted = self._ids(topic)
        return [t for entry in self._order if isinstance(entry, Chunk)
                for channel, t in entry.messages if channel in wanted]

    def messages(self, topic: str) -> Iterator[Recovered]:
        wanted = self._ids(topic)
        position: int | None = 0
        for entry in self._order:
            if isinstance(entry, LostRegion):
                lost = entry.lost_on(topic)
                position = None if position is None or lost is None else position + lost
                continue
            if not any(channel in wanted for channel, _ in entry.messages):
                continue
            for stamp, raw in self._chunk_messages(entry, wanted):
                yield Recovered(stamp, raw, position)
                position = None if position is None else position + 1

    def close(self) -> None:
        self._fh.close()

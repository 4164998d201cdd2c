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

"""What a damaged bag lost, as found by the salvage readers (docs/segment_bag.md)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


class Recovered(NamedTuple):
    """One message read back: receive time, raw bytes, position on its topic.

    ``position`` is the 0-based index the message had on its topic in the intact bag, or
    None where lost messages of unknown number come before it.
    """

    timestamp: int
    raw: bytes
    position: int | None


@dataclass
class LostRegion:
    """A stretch of the file whose messages could not be read."""

    reason: str
    offset: int | None = None  # byte offset in the storage file (sqlite3: None)
    start_ns: int | None = None  # receive times covered, where the file still says
    end_ns: int | None = None
    messages: int | None = None  # None: the file no longer says how many
    topics: dict[str, int] | None = None  # lost messages per topic, None where unknown
    timestamps: dict[str, list[int]] = field(default_factory=dict)  # per topic, where known

    def lost_on(self, topic: str) -> int | None:
        if self.topics is None:
            return None if self.messages != 0 else 0
        return self.topics.get(topic, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "offset": self.offset, "start_ns": self.start_ns,
                "end_ns": self.end_ns, "messages": self.messages, "topics": self.topics}


@dataclass
class Damage:
    """Why a bag was salvaged, how, and what was lost."""

    storage: str
    cause: str  # what the normal reader said
    method: str  # how the bag was read instead
    regions: list[LostRegion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # damage that cost no messages

    def lost_on(self, topic: str) -> int | None:
        """Messages of ``topic`` lost, or None where some region does not say."""
        counts = [r.lost_on(topic) for r in self.regions]
        return None if None in counts else sum(c for c in counts if c is not None)

    def messages_lost(self) -> int | None:
        counts = [r.messages for r in self.regions]
        return None if None in counts else sum(c for c in counts if c is not None)

    def as_dict(self, topics: Sequence[str] = ()) -> dict[str, Any]:
        return {"storage": self.storage, "cause": self.cause, "method": self.method,
                "messages_lost": self.messages_lost(),
                "topic_messages_lost": {t: self.lost_on(t) for t in topics},
                "regions": [r.as_dict() for r in self.regions], "notes": list(self.notes)}


class SalvageSource(Protocol):
    """What a salvage reader offers the pipeline in place of rosbags' AnyReader."""

    damage: Damage

    def topic_types(self) -> dict[str, tuple[str, int]]:
        """Map each topic to its message type and the messages recovered."""

    def messages(self, topic: str) -> Iterator[Recovered]:
        """Recovered messages of ``topic`` in the order rosbags reads the intact bag in."""

    def times(self, topic: str) -> list[int]:
        """Return the receive times of ``topic``'s recovered messages, in ``messages``' order.

        No message data is read.
        """

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        """Decode one message of a type this bag defines."""

    def close(self) -> None:
        """Release the file."""


def merge_regions(regions: list[LostRegion], reason: str) -> LostRegion:
    """One region for consecutive lost rows (sqlite3) with the same cause."""
    starts = [r.start_ns for r in regions if r.start_ns is not None]
    ends = [r.end_ns for r in regions if r.end_ns is not None]
    topics: dict[str, int] | None = {}
    stamps: dict[str, list[int]] = {}
    for r in regions:
        if r.topics is None or topics is None:
            topics = None
        else:
            for name, count in r.topics.items():
                topics[name] = topics.get(name, 0) + count
        for name, values in r.timestamps.items():
            stamps.setdefault(name, []).extend(values)
    return LostRegion(reason, None, min(starts) if starts else None,
                      max(ends) if ends else None, len(regions), topics, stamps)

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

"""A storage file of a split bag that metadata.yaml lists but the disk no longer holds.

Its messages are lost: the region says how many from its ``files[]`` entry, and per topic
only where metadata.yaml's topic totals pin that down (docs/segment_bag.md, Damaged bags).
The chained reader offsets the positions of the files after it by that count, so
index-named ground truth keeps pairing with the right frames.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import BagError
from .damage import Damage, LostRegion, Recovered, SalvageSource


def _int(value: Any) -> int | None:
    # bool is an int in Python; a yaml "true" is no count
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _nested_int(entry: dict[str, Any], key: str, inner: str) -> int | None:
    value = entry.get(key)
    return _int(value.get(inner)) if isinstance(value, dict) else None


def topic_totals(meta: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    """Map each topic metadata.yaml lists to its type and message count (None if unusable)."""
    out: dict[str, tuple[str, int | None]] = {}
    for item in meta.get("topics_with_message_count") or []:
        if not isinstance(item, dict) or not isinstance(item.get("topic_metadata"), dict):
            continue
        info = item["topic_metadata"]
        if isinstance(info.get("name"), str):
            out[info["name"]] = (str(info.get("type") or "(unknown type)"),
                                 _int(item.get("message_count")))
    return out


class MissingFile:
    """Stands in for a listed storage file that is not on disk: nothing read, all lost."""

    def __init__(self, path: Path, storage: str, cause: str, entry: dict[str, Any],
                 meta: dict[str, Any]):
        start = _nested_int(entry, "starting_time", "nanoseconds_since_epoch")
        length = _nested_int(entry, "duration", "nanoseconds")
        self.region = LostRegion(
            f"{path.name}: storage file listed in metadata.yaml is missing", None, start,
            start + length if start is not None and length is not None else None,
            _int(entry.get("message_count")), None)  # per topic: see attribute_losses
        # an empty file loses nothing on any topic (LostRegion.lost_on gives 0 then)
        self.damage = Damage(storage, cause, "listed storage file missing", [self.region])
        # metadata's topics, so a topic recorded only in this file is still listed as lost
        self._types = {t: msgtype for t, (msgtype, _) in topic_totals(meta).items()}

    def topic_types(self) -> dict[str, tuple[str, int]]:
        return {topic: (msgtype, 0) for topic, msgtype in self._types.items()}

    def messages(self, topic: str) -> Iterator[Recovered]:
        return iter(())

    def times(self, topic: str) -> list[int]:
        return []

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        raise BagError(f"{self.region.reason}; it has no messages to decode")

    def close(self) -> None:
        pass


def attribute_losses(missing: Sequence[MissingFile], present: Sequence[SalvageSource],
                     meta: dict[str, Any]) -> None:
    """Give the missing file its lost messages per topic where metadata.yaml pins them down.

    Only for one missing file with messages: a topic's loss is its metadata total less
    what the present files hold (recovered plus their own known losses). The result must
    add up to the file's own message count; a cut or inconsistent file, or several missing
    files, leave the per-topic loss unknown (None), so positions after it are not trusted.
    """
    lossy = [m for m in missing if m.region.messages != 0]
    if len(lossy) != 1 or lossy[0].region.messages is None:
        return
    totals = topic_totals(meta)
    held: dict[str, int] = {}
    for source in present:
        for topic, (_, count) in source.topic_types().items():
            lost = source.damage.lost_on(topic)
            if topic not in totals or lost is None:
                return  # metadata.yaml does not describe these files, or a loss is unknown
            held[topic] = held.get(topic, 0) + count + lost
    lost_by_topic: dict[str, int] = {}
    for topic, (_, total) in totals.items():
        if total is None or total < held.get(topic, 0):
            return
        lost_by_topic[topic] = total - held.get(topic, 0)
    if sum(lost_by_topic.values()) == lossy[0].region.messages:
        lossy[0].region.topics = {t: n for t, n in lost_by_topic.items() if n}

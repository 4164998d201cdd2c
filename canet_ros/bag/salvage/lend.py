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

"""Channel definitions a split MCAP bag's file lost, taken from its other files.

An MCAP writer puts a channel's schema and channel records in the chunk of the channel's
first message, and repeats them only in the summary. A file whose first chunk and summary
are both lost keeps intact chunks of channels it no longer defines: without a topic they
count as lost (ChunkScan.account_undefined). The bag's other files define their channels
too, but the ids are each file's own, so a definition is taken over only where it is
checked: all other files agree on every id, the file's own surviving definitions agree
with them, and with the lent channels every topic's messages (read plus lost) add up to
metadata.yaml's total for it. Anything else leaves the messages lost, topic unknown.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .damage import SalvageSource
from .mcap import McapSalvage
from .missing import topic_totals

Table = dict[int, tuple[str, int, str]]  # channel id -> topic, schema id, schema name


def _table(scan: McapSalvage) -> Table:
    return {cid: (topic, sid, scan.schemas.get(sid, "")) for cid, (topic, sid)
            in scan.channels.items()}


def _shared(scans: Sequence[McapSalvage]) -> Table | None:
    """Return the channels all ``scans`` agree on, or None where two define one differently."""
    shared: Table = {}
    for scan in scans:
        for cid, entry in _table(scan).items():
            if shared.setdefault(cid, entry) != entry:
                return None
    topics = [topic for topic, _, _ in shared.values()]
    return shared if len(topics) == len(set(topics)) else None


def _totals_agree(sources: Sequence[SalvageSource], meta: dict[str, Any]) -> bool:
    totals = topic_totals(meta)
    held: dict[str, int] = {}
    for source in sources:
        for topic, (_, count) in source.topic_types().items():
            lost = source.damage.lost_on(topic)
            if lost is None:
                return False
            held[topic] = held.get(topic, 0) + count + lost
    return bool(totals) and all(total == held.get(topic, 0)
                                for topic, (_, total) in totals.items())


def lend_definitions(sources: Sequence[SalvageSource], meta: dict[str, Any]) -> None:
    """Give each MCAP file the lost channel definitions its sibling files check out for."""
    scans = [s for s in sources if isinstance(s, McapSalvage)]
    for scan in scans:
        missing = {cid for cid, n in scan.counts.items() if n and cid not in scan.channels}
        shared = _shared([other for other in scans if other is not scan]) if missing else None
        if not shared or any(shared.get(cid, entry) != entry
                             for cid, entry in _table(scan).items()):
            continue
        lent = {cid: shared[cid] for cid in missing if cid in shared
                and scan.schemas.get(shared[cid][1], shared[cid][2]) == shared[cid][2]}
        if not lent:
            continue
        before = (dict(scan.channels), dict(scan.schemas))
        for cid, (topic, sid, schema) in lent.items():
            scan.channels[cid], scan.schemas[sid] = (topic, sid), schema
        scan.finish()
        if not _totals_agree(sources, meta):
            scan.channels, scan.schemas = before
            scan.finish()
            continue
        scan.damage.notes.append(
            f"{scan.path.name}: the definition of channel(s) "
            f"{', '.join(f'#{cid} ({lent[cid][0]})' for cid in sorted(lent))} was lost; taken "
            f"from the bag's other files, which agree on it, as do metadata.yaml's counts")

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

"""Read what is still readable in a ROS 2 sqlite3 bag whose file was cut short.

SQLite refuses a file whose header promises more pages than it holds. The file is opened
read-only and immutable (nothing can be written to it, no journal is touched) with
``PRAGMA writable_schema=ON``, which only makes SQLite accept the short file; then every
row of ``messages`` is read on its own by id, so a row on a lost page costs that row only.
A row whose leaf cell survived but whose data did not still gives its topic and time.
Rows come back as rosbags reads the intact file (``ORDER BY timestamp``, ties by row id,
the order of the timestamp index); see salvage/order.py for positions on a topic.

SQLite reads the missing part of a page that the cut went through as zeros, without an
error; a file that does not end on a page boundary is therefore read through a temporary
copy of its whole pages, so no row is read with zeros in place of its data.
"""
from __future__ import annotations

import bisect
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BagError
from ..typestore import humble_typestore
from .damage import Damage, LostRegion, Recovered, merge_regions
from .order import HIGH, LOW, Positions, Span, between, in_order

# Reading the data walks its overflow pages, so a row that reads here reads again.
_ROW = "SELECT topic_id, timestamp, data FROM messages WHERE id = ?"
_DATA = "SELECT data FROM messages WHERE id = ?"


class SqliteSalvage:
    """Row-by-row read of one .db3 file; see the module docstring."""

    def __init__(self, path: Path, cause: str, expected: int | None = None,
                 compressed: bool = False):
        self.path = path
        self.compressed = compressed  # rosbag2 "message" compression: zstd per message
        self.damage = Damage("sqlite3", cause, "rows of the messages table read one by one "
                             "(read-only, immutable)")
        self._tmp: tempfile.TemporaryDirectory | None = None
        uri = f"{self._whole_pages(path).resolve().as_uri()}?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._db.execute("PRAGMA writable_schema=ON")
            rows = self._db.execute("SELECT id, name, type FROM topics").fetchall()
        except sqlite3.Error as exc:
            raise BagError(f"{path}: cannot salvage: the topics table is unreadable "
                           f"({exc})") from None
        self.topics = {int(i): (str(name), str(kind)) for i, name, kind in rows}
        self.rows: list[tuple[int, int, int]] = []  # (id, topic id, timestamp) readable
        self._lost: list[tuple[int, LostRegion]] = []  # (id, region of that one row)
        self._index_times = self._times_from_index()
        self._read_rows(self._last_id(expected))

    def _whole_pages(self, path: Path) -> Path:
        """``path``, or a temporary copy of its whole pages where it ends inside a page."""
        try:
            with path.open("rb") as fh:
                head = fh.read(100)
            size = path.stat().st_size
        except OSError as exc:
            raise BagError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
            raise BagError(f"{path}: cannot salvage: the SQLite header is damaged")
        page = int.from_bytes(head[16:18], "big")
        page = 65536 if page == 1 else page
        if page < 512 or size % page == 0:
            return path
        whole = size // page * page
        self.damage.notes.append(f"the file ends {size - whole} bytes into page "
                                 f"{whole // page + 1}; that page was left out (read through "
                                 f"a temporary copy of the whole pages)")
        self._tmp = tempfile.TemporaryDirectory(prefix="canet_salvage_")
        copy = Path(self._tmp.name) / path.name
        with path.open("rb") as src, copy.open("wb") as dst:
            remaining = whole
            while remaining:
                block = src.read(min(remaining, 1 << 22))
                dst.write(block)
                remaining -= len(block)
        return copy

    def _times_from_index(self) -> dict[int, int]:
        """Row id -> time from the timestamp index, which may outlive the rows' pages."""
        times: dict[int, int] = {}
        try:
            names = {r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'")}
            if "timestamp_idx" in names:
                for rid, stamp in self._db.execute(
                        "SELECT id, timestamp FROM messages INDEXED BY timestamp_idx"):
                    times[int(rid)] = int(stamp)
        except sqlite3.Error:
            pass  # what was read so far still helps
        return times

    def _last_id(self, expected: int | None) -> int:
        """Return the highest row id worth trying: metadata's count, or what the file shows."""
        last = max([expected or 0, *self._index_times])
        for query in ("SELECT max(id) FROM messages", "SELECT id FROM messages"):
            try:
                for (value,) in self._db.execute(query):
                    last = max(last, int(value or 0))
            except sqlite3.Error:
                continue  # the rows so far still count
        return last

    def _read_rows(self, last: int) -> None:
        errors: Counter[str] = Counter()
        for rid in range(1, last + 1):
            try:
                row = self._db.execute(_ROW, (rid,)).fetchone()
                if row is not None:
                    self.rows.append((rid, int(row[0]), int(row[1])))
                    continue
                why = "row missing"
            except sqlite3.Error as exc:
                why = str(exc)
            errors[why] += 1
            self._lost.append((rid, self._lost_row(rid, why)))
        self._group()
        if not self.rows and not self._lost:
            self.damage.notes.append("the messages table holds no readable rows")

    def _lost_row(self, rid: int, why: str) -> LostRegion:
        region = LostRegion(why, messages=1)
        try:  # the row's leaf cell may have survived where its data did not
            row = self._db.execute("SELECT topic_id, timestamp FROM messages WHERE id = ?",
                                   (rid,)).fetchone()
        except sqlite3.Error:
            row = None
        if row is not None and int(row[0]) in self.topics:
            topic = self.topics[int(row[0])][0]
            region.start_ns = region.end_ns = int(row[1])
            region.topics = {topic: 1}
            region.timestamps = {topic: [int(row[1])]}
        elif rid in self._index_times:
            region.start_ns = region.end_ns = self._index_times[rid]
        return region

    def _group(self) -> None:
        """One region per run of consecutive lost rows."""
        run: list[tuple[int, LostRegion]] = []
        for rid, region in self._lost + [(-1, LostRegion(""))]:
            if run and (rid != run[-1][0] + 1):
                first, last = run[0][0], run[-1][0]
                reasons = sorted({r.reason for _, r in run})
                merged = merge_regions([r for _, r in run], f"rows {first}..{last} of "
                                                            f"messages unreadable "
                                                            f"({'; '.join(reasons)})")
                merged.offset = None
                self.damage.regions.append(merged)
                run = []
            if rid != -1:
                run.append((rid, region))

    def topic_types(self) -> dict[str, tuple[str, int]]:
        counts = Counter(tid for _, tid, _ in self.rows)
        return {name: (kind, counts[tid]) for tid, (name, kind) in self.topics.items()}

    def _keys(self, topic: str) -> list[tuple[int, int]]:
        """(time, row id) of the readable rows of ``topic``: the order rosbags reads them in."""
        ids = {tid for tid, (name, _) in self.topics.items() if name == topic}
        return sorted((stamp, rid) for rid, tid, stamp in self.rows if tid in ids)

    def times(self, topic: str) -> list[int]:
        return [stamp for stamp, _ in self._keys(topic)]

    def messages(self, topic: str) -> Iterator[Recovered]:
        positions = Positions(self._spans(topic))
        for stamp, rid in self._keys(topic):
            position = positions.advance((stamp, rid))  # the row counts even if it fails now
            try:
                row = self._db.execute(_DATA, (rid,)).fetchone()
            except sqlite3.Error:
                row = None  # readable in the first pass; a second failure is not expected
            if row is None:
                continue
            data = bytes(row[0])
            if self.compressed:
                import zstandard

                data = zstandard.ZstdDecompressor().decompress(data)
            yield Recovered(stamp, data, position)

    def _spans(self, topic: str) -> list[Span]:
        """Where each lost row that may be on ``topic`` sits in (time, row id) order."""
        known = sorted([(rid, stamp) for rid, _, stamp in self.rows]
                       + [(rid, r.start_ns) for rid, r in self._lost if r.start_ns is not None])
        rids = [rid for rid, _ in known]
        ordered = in_order((t, t) for _, t in known)
        spans = []
        for rid, region in self._lost:
            count = region.lost_on(topic)
            if count == 0:
                continue
            if region.start_ns is not None:
                spans.append(Span((region.start_ns, rid), (region.start_ns, rid), count))
                continue
            # Neither time nor topic survived: between the rows written before and after it.
            at = bisect.bisect_left(rids, rid)
            first, last = between(known[at - 1][1] if at else None,
                                  known[at][1] if at < len(known) else None, ordered)
            spans.append(Span(LOW if first is None else (first, rid),
                              HIGH if last is None else (last, rid), count))
        return spans

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return humble_typestore().deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        self._db.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

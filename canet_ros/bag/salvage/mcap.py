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

"""Read what is still readable in a truncated or damaged MCAP file.

MCAP is a sequence of ``opcode (u8), length (u64), body`` records, so the data section can
be walked from the start without the summary at the end. A chunk that no longer
decompresses, fails its CRC or does not parse is skipped and the next record is tried; the
message index records that follow a chunk in the data section say how many messages (and
which receive times) a skipped chunk held. Where a length field itself is damaged, the scan
searches forward for the next record that parses as a chunk.
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BagError
from ..typestore import humble_typestore
from .damage import LostRegion
from .scan import Chunk, ChunkScan, by_topic

MAGIC = b"\x89MCAP0\r\n"
HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK, MESSAGE_INDEX = 1, 2, 3, 4, 5, 6, 7
CHUNK_INDEX, STATISTICS, DATA_END = 8, 11, 15
_KNOWN_OPS = set(range(1, 16))
_CHUNK_HEAD = struct.Struct("<QQQI")  # start, end, uncompressed size, crc
_MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel, sequence, log time, publish time
_RESYNC_BLOCK = 1 << 20


def _string(buf: bytes, at: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, at)
    end = at + 4 + n
    if end > len(buf):
        raise ValueError("string runs past its record")
    return buf[at + 4: end].decode("utf-8"), end


def _bytes(buf: bytes, at: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("<I", buf, at)
    if at + 4 + n > len(buf):
        raise ValueError("byte field runs past its record")
    return buf[at + 4: at + 4 + n], at + 4 + n


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    raise ValueError(f"unknown chunk compression {compression!r}")


def _inner_records(data: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at < len(data):
        if at + 9 > len(data):
            raise ValueError("record header cut short inside the chunk")
        op, length = struct.unpack_from("<BQ", data, at)
        if at + 9 + length > len(data):
            raise ValueError("record runs past the end of the chunk")
        yield op, data[at + 9: at + 9 + length]
        at += 9 + length


class McapSalvage(ChunkScan):
    """Linear scan of one MCAP file; see the module docstring."""

    KIND = "mcap"
    METHOD = "linear scan of the MCAP records (summary and index not needed)"

    def __init__(self, path: Path, cause: str):
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, int]] = {}  # id -> (topic, schema id)
        self._stats: dict[int, int] | None = None
        self._in_summary = False
        self._chunked = False  # a chunk record was seen (an unchunked file reads in file order)
        super().__init__(path, cause)

    # -- first pass ------------------------------------------------------------------------
    def _scan(self) -> None:
        if self._read(0, 8) != MAGIC:
            raise BagError(f"{self.path}: cannot salvage: not an MCAP file (no magic at the "
                           f"start)")
        at = 8
        while at < self.size:
            head = self._read(at, 9)
            if len(head) < 9:
                self._cut(at, None, "the file ends inside a record header")
                return
            op, length = struct.unpack("<BQ", head)
            end = at + 9 + length
            bad = op not in _KNOWN_OPS or (op == CHUNK and length < 40)
            if bad or end > self.size:
                # A damaged length looks like a cut-off file; a chunk further on tells them
                # apart.
                resume = None if self._in_summary else self._resync(at)
                if resume is not None:
                    self._chunked = True
                    what = (f"unreadable record (opcode {op:#04x})" if bad else
                            f"{_name(op)} record claiming {length} bytes")
                    self._skip(LostRegion(f"{what} at byte {at}; reading resumed at the chunk "
                                          f"at byte {resume}", at))
                    self._bad = None
                    at = resume
                    continue
                self._cut(at, op, f"the file ends inside a {_name(op)} record that starts at "
                                  f"byte {at} ({self.size - at} of {9 + length} bytes present)")
                return
            if op == FOOTER:
                return
            self._record(op, at, self._read(at + 9, length))
            at = end
        if not self._in_summary:
            self.damage.notes.append(f"the file ends at byte {self.size} without its summary "
                                     f"and footer")
        else:
            self.damage.notes.append("the file ends inside its summary section (it holds only "
                                     "indexes; no messages are lost)")

    def _record(self, op: int, at: int, body: bytes) -> None:
        if op == CHUNK:
            self._chunk(at, body)
            return
        if op == MESSAGE_INDEX:
            self._message_index(body)
            return
        self._bad = None
        if op == DATA_END:
            self._in_summary = True
        elif op == STATISTICS:
            self._statistics(body)
        elif op in (SCHEMA, CHANNEL):
            self._definition(op, body)
        elif op == MESSAGE and not self._in_summary:
            channel, _, log_time, _ = _MESSAGE_HEAD.unpack_from(body, 0)
            self.counts[channel] += 1
            self._order.append(Chunk(at, [(channel, log_time)]))

    def _definition(self, op: int, body: bytes) -> None:
        try:
            if op == SCHEMA:
                (sid,) = struct.unpack_from("<H", body, 0)
                self.schemas[sid], _ = _string(body, 2)
            else:
                cid, sid = struct.unpack_from("<HH", body, 0)
                topic, _ = _string(body, 4)
                self.channels[cid] = (topic, sid)
        except (struct.error, ValueError, UnicodeDecodeError):
            pass  # a damaged definition outside a chunk: its messages count as unknown

    def _chunk(self, at: int, body: bytes) -> None:
        self._chunked = True
        start, end, size, crc = _CHUNK_HEAD.unpack_from(body, 0)
        region = LostRegion(f"chunk at byte {at}", at, start, end)
        try:
            compression, pos = _string(body, 28)
            (csize,) = struct.unpack_from("<Q", body, pos)
            if pos + 8 + csize > len(body):
                raise ValueError("compressed data runs past the chunk record")
            data = _decompress(body[pos + 8: pos + 8 + csize], compression, size)
            if len(data) != size:
                raise ValueError(f"decompressed to {len(data)} bytes, the chunk says {size}")
            if crc and zlib.crc32(data) != crc:
                raise ValueError("fails its CRC check")
            good = Chunk(at)
            defs = []
            for op, rec in _inner_records(data):
                if op == MESSAGE:
                    channel, _, log_time, _ = _MESSAGE_HEAD.unpack_from(rec, 0)
                    good.messages.append((channel, log_time))
                elif op in (SCHEMA, CHANNEL):
                    defs.append((op, rec))
        except Exception as exc:  # zstd, lz4 and struct raise many types on damaged data
            region.reason = f"chunk at byte {at} {_why(exc)}"
            self._skip(region)
            return
        self._bad = None
        for op, rec in defs:
            self._definition(op, rec)
        self.counts.update(channel for channel, _ in good.messages)
        self._order.append(good)

    def _skip(self, region: LostRegion) -> None:
        region.topics = None
        self.damage.regions.append(region)
        self._order.append(region)
        self._bad = region

    def _message_index(self, body: bytes) -> None:
        """Return a skipped chunk's message index: how many messages of a channel it held, when."""
        region = self._bad
        if region is None:
            return
        try:
            (channel,) = struct.unpack_from("<H", body, 0)
            raw, _ = _bytes(body, 2)
            stamps = [t for t, _ in struct.iter_unpack("<QQ", raw)]
        except (struct.error, ValueError):
            return
        # Counts are per channel id until the channel names are all known (summary).
        region.timestamps.setdefault(f"#{channel}", []).extend(stamps)
        region.messages = sum(len(v) for v in region.timestamps.values())

    def _statistics(self, body: bytes) -> None:
        try:
            raw, _ = _bytes(body, 42)
            self._stats = dict(struct.iter_unpack("<HQ", raw))
        except (struct.error, ValueError):
            self._stats = None

    def _cut(self, at: int, op: int | None, reason: str) -> None:
        if self._in_summary:
            self.damage.notes.append(f"{reason}; it lies in the summary section (indexes "
                                     f"only, no messages are lost)")
            return
        region = LostRegion(reason, at)
        if op == CHUNK:
            self._chunked = True
            head = self._read(at + 9, _CHUNK_HEAD.size)
            if len(head) == _CHUNK_HEAD.size:
                region.start_ns, region.end_ns = _CHUNK_HEAD.unpack(head)[:2]
        elif op == MESSAGE:
            head = self._read(at + 9, _MESSAGE_HEAD.size)
            if len(head) == _MESSAGE_HEAD.size:
                channel, _, log_time, _ = _MESSAGE_HEAD.unpack(head)
                region.start_ns = region.end_ns = log_time
                region.timestamps[f"#{channel}"] = [log_time]
                region.messages = 1
        elif op in (SCHEMA, CHANNEL, MESSAGE_INDEX, DATA_END, STATISTICS, CHUNK_INDEX):
            region.messages = 0
        self._skip(region)
        self._bad = None

    def _resync(self, at: int) -> int | None:
        """Offset of the next record after ``at`` that parses as a chunk, if any."""
        pos = at + 1
        while pos < self.size:
            block = self._read(pos, _RESYNC_BLOCK)
            hit = block.find(b"\x06")
            while hit != -1:
                if self._plausible_chunk(pos + hit):
                    return pos + hit
                hit = block.find(b"\x06", hit + 1)
            pos += _RESYNC_BLOCK
        return None

    def _plausible_chunk(self, at: int) -> bool:
        head = self._read(at, 9 + 28 + 4)
        if len(head) < 41:
            return False
        _, length = struct.unpack_from("<BQ", head, 0)
        start, end, _, _ = _CHUNK_HEAD.unpack_from(head, 9)
        (clen,) = struct.unpack_from("<I", head, 37)
        return (40 <= length and at + 9 + length <= self.size and start <= end
                and clen <= 4)

    # -- after the scan ----------------------------------------------------------------------
    def finish(self) -> None:
        """Name the channels of skipped chunks' counts, and derive counts the index lacks."""
        # without a chunk there is no message index: rosbag2 reads the file in file order
        self.file_order = not self._chunked
        names = {cid: topic for cid, (topic, _) in self.channels.items()}
        for region in self.damage.regions:
            if region.timestamps and all(k[1:].isdigit() and int(k[1:]) in names
                                         for k in region.timestamps):
                region.timestamps = by_topic(region.timestamps, names)
                region.topics = {k: len(v) for k, v in region.timestamps.items()}
                stamps = [t for v in region.timestamps.values() for t in v]
                region.start_ns, region.end_ns = min(stamps), max(stamps)
            elif region.messages == 0:
                region.topics = {}
        unknown = [r for r in self.damage.regions if r.topics is None]
        if self._stats is not None and len(unknown) == 1:
            # The summary's statistics survived: the one region the index does not describe
            # lost whatever the statistics count beyond what was read and described.
            lost = {cid: n - self.counts[cid] - sum(r.topics.get(names.get(cid, ""), 0)
                                                    for r in self.damage.regions if r.topics)
                    for cid, n in self._stats.items()}
            if all(cid in names and n >= 0 for cid, n in lost.items()):
                unknown[0].topics = {names[cid]: n for cid, n in lost.items() if n}
                unknown[0].messages = sum(unknown[0].topics.values())
        self.account_undefined()

    def topic_types(self) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for cid, (topic, sid) in self.channels.items():
            msgtype = self.schemas.get(sid, "(unknown type)")
            count = out.get(topic, (msgtype, 0))[1] + self.counts[cid]
            out[topic] = (msgtype, count)
        return out

    def _ids(self, topic: str) -> set[int]:
        return {cid for cid, (name, _) in self.channels.items() if name == topic}

    def defined_ids(self) -> set[int]:
        return set(self.channels)

    def _chunk_messages(self, entry: Chunk, wanted: set[int]) -> list[tuple[int, int, bytes]]:
        op, length = struct.unpack("<BQ", self._read(entry.offset, 9))
        body = self._read(entry.offset + 9, length)
        if op == MESSAGE:
            records = [(MESSAGE, body)]
        else:
            _, _, size, _ = _CHUNK_HEAD.unpack_from(body, 0)
            compression, pos = _string(body, 28)
            (csize,) = struct.unpack_from("<Q", body, pos)
            records = list(_inner_records(_decompress(body[pos + 8: pos + 8 + csize],
                                                      compression, size)))
        out = []
        for rop, rec in records:
            if rop == MESSAGE:
                channel, _, log_time, _ = _MESSAGE_HEAD.unpack_from(rec, 0)
                if channel in wanted:
                    out.append((log_time, channel, rec[_MESSAGE_HEAD.size:]))
        return out

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return humble_typestore().deserialize_cdr(raw, msgtype)


def _name(op: int) -> str:
    return {CHUNK: "chunk", MESSAGE: "message", SCHEMA: "schema", CHANNEL: "channel",
            MESSAGE_INDEX: "message index", CHUNK_INDEX: "chunk index",
            STATISTICS: "statistics"}.get(op, f"opcode {op:#04x}")


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if text.startswith("fails") else f"cannot be read ({text})"


def open_mcap_salvage(path: Path, cause: str) -> McapSalvage:
    scan = McapSalvage(path, cause)
    scan.finish()
    return scan

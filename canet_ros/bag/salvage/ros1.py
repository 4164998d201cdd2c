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

"""Read what is still readable in a ROS 1 bag without its index (cut short, never closed).

A ROS 1 bag (format 2.0) is a sequence of records, each ``header length, header, data
length, data``; chunks hold the connection and message records, and the index is written
after the last chunk when the recorder closes the bag. The chunks are walked from the
start; a chunk that no longer decompresses is skipped, and the index data records that
follow it say how many messages (and which receive times) it held.
"""
from __future__ import annotations

import bz2
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BagError
from .damage import LostRegion
from .scan import Chunk, ChunkScan, by_topic

MAGIC = b"#ROSBAG V2.0\n"
OP_MESSAGE, OP_BAG_HEADER, OP_INDEX, OP_CHUNK, OP_CHUNK_INFO, OP_CONNECTION = 2, 3, 4, 5, 6, 7


def parse_header(raw: bytes) -> dict[str, bytes]:
    fields: dict[str, bytes] = {}
    at = 0
    while at < len(raw):
        (n,) = struct.unpack_from("<I", raw, at)
        if at + 4 + n > len(raw):
            raise ValueError("header field runs past the header")
        name, sep, value = raw[at + 4: at + 4 + n].partition(b"=")
        if not sep:
            raise ValueError("header field without '='")
        fields[name.decode("ascii", "replace")] = value
        at += 4 + n
    return fields


def _records(data: bytes) -> Iterator[tuple[dict[str, bytes], bytes]]:
    at = 0
    while at < len(data):
        (hlen,) = struct.unpack_from("<I", data, at)
        header = parse_header(data[at + 4: at + 4 + hlen])
        (dlen,) = struct.unpack_from("<I", data, at + 4 + hlen)
        start = at + 8 + hlen
        if start + dlen > len(data):
            raise ValueError("record runs past the end of the chunk")
        yield header, data[start: start + dlen]
        at = start + dlen


def _time(value: bytes) -> int:
    sec, nsec = struct.unpack("<II", value)
    return sec * 1_000_000_000 + nsec


def _decompress(data: bytes, compression: str) -> bytes:
    if compression == "none":
        return data
    if compression == "bz2":
        return bz2.decompress(data)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    raise ValueError(f"unknown chunk compression {compression!r}")


def ros2_type_name(ros1: str) -> str:
    """``sensor_msgs/Image`` -> ``sensor_msgs/msg/Image`` (what rosbags calls it)."""
    pkg, _, name = ros1.partition("/")
    return f"{pkg}/msg/{name}" if name and "/msg/" not in ros1 else ros1


class Ros1Salvage(ChunkScan):
    """Linear scan of one ROS 1 bag; see the module docstring."""

    KIND = "ros1"
    METHOD = "linear scan of the ROS 1 chunks (index not needed)"
    TIES_BY_CHANNEL = True  # rosbags merges one index per connection, in connection order

    def __init__(self, path: Path, cause: str):
        self.connections: dict[int, tuple[str, str, str]] = {}  # id -> topic, type, msgdef
        self._typestore: Any = None
        self._index_pos = 0  # where the closed bag's index starts (0: never closed)
        super().__init__(path, cause)

    def _scan(self) -> None:
        self._scan_records()
        self._name_regions()

    def _scan_records(self) -> None:
        if self._read(0, len(MAGIC)) != MAGIC:
            raise BagError(f"{self.path}: cannot salvage: not a ROS 1 bag version 2.0")
        at = len(MAGIC)
        while at < self.size:
            head = self._read(at, 4)
            (hlen,) = struct.unpack("<I", head) if len(head) == 4 else (None,)
            raw = self._read(at + 4, hlen) if hlen is not None else b""
            dhead = self._read(at + 4 + len(raw), 4)
            if hlen is None or len(raw) < hlen or len(dhead) < 4:
                self._cut(at, None, "the file ends inside a record header")
                return
            try:
                header = parse_header(raw)
                op = header["op"][0]
            except (ValueError, KeyError, IndexError, struct.error):
                self._cut(at, None, f"unreadable record header at byte {at}")
                return
            (dlen,) = struct.unpack("<I", dhead)
            start = at + 8 + hlen
            if start + dlen > self.size:
                self._cut(at, op, f"the file ends inside a {_name(op)} record that starts at "
                                  f"byte {at} ({self.size - at} of {8 + hlen + dlen} bytes "
                                  f"present)")
                return
            self._record(op, at, header, start, dlen)
            at = start + dlen

    def _record(self, op: int, at: int, header: dict[str, bytes], start: int,
                dlen: int) -> None:
        if op == OP_CHUNK:
            self._chunk(at, header, self._read(start, dlen))
        elif op == OP_INDEX:
            self._index(header, self._read(start, dlen))
        elif op == OP_CONNECTION:
            self._bad = None
            self._connection(header, self._read(start, dlen))
        elif op == OP_BAG_HEADER:
            index_pos = struct.unpack("<Q", header.get("index_pos", b"\0" * 8))[0]
            self._index_pos = index_pos
            if index_pos == 0:
                self.damage.notes.append("the bag header has no index position: the "
                                         "recorder did not close the bag")
        else:
            self._bad = None

    def _connection(self, header: dict[str, bytes], data: bytes) -> None:
        try:
            conn = struct.unpack("<I", header["conn"])[0]
            fields = parse_header(data)
            self.connections[conn] = (header["topic"].decode("utf-8"),
                                      ros2_type_name(fields["type"].decode("utf-8")),
                                      fields.get("message_definition", b"").decode("utf-8"))
        except (KeyError, ValueError, struct.error, UnicodeDecodeError):
            pass  # its messages will count as on an unknown connection

    def _chunk(self, at: int, header: dict[str, bytes], data: bytes) -> None:
        good = Chunk(at)
        try:
            compression = header["compression"].decode("ascii")
            size = struct.unpack("<I", header["size"])[0]
            plain = _decompress(data, compression)
            if len(plain) != size:
                raise ValueError(f"decompressed to {len(plain)} bytes, the chunk says {size}")
            defs = []
            for rec_header, rec_data in _records(plain):
                op = rec_header["op"][0]
                if op == OP_MESSAGE:
                    good.messages.append((struct.unpack("<I", rec_header["conn"])[0],
                                          _time(rec_header["time"])))
                elif op == OP_CONNECTION:
                    defs.append((rec_header, rec_data))
        except Exception as exc:  # bz2, lz4 and struct raise many types on damaged data
            region = LostRegion(f"chunk at byte {at} cannot be read "
                                f"({str(exc).strip() or type(exc).__name__})", at)
            self.damage.regions.append(region)
            self._order.append(region)
            self._bad = region
            return
        self._bad = None
        for rec_header, rec_data in defs:
            self._connection(rec_header, rec_data)
        self.counts.update(conn for conn, _ in good.messages)
        self._order.append(good)

    def _index(self, header: dict[str, bytes], data: bytes) -> None:
        """Return a skipped chunk's index data: messages per connection and their times."""
        region = self._bad
        if region is None:
            return
        try:
            conn = struct.unpack("<I", header["conn"])[0]
            stamps = [_time(data[i: i + 8]) for i in range(0, len(data) - 11, 12)]
        except (KeyError, struct.error):
            return
        region.timestamps.setdefault(f"#{conn}", []).extend(stamps)
        region.messages = sum(len(v) for v in region.timestamps.values())

    def _cut(self, at: int, op: int | None, reason: str) -> None:
        if 0 < self._index_pos <= at:
            self.damage.notes.append(f"{reason}; it lies in the index after the last chunk "
                                     f"(no messages are lost)")
            return
        region = LostRegion(reason, at, messages=0 if op in (OP_INDEX, OP_CHUNK_INFO,
                                                             OP_CONNECTION) else None)
        self.damage.regions.append(region)
        self._order.append(region)

    def _name_regions(self) -> None:
        for region in self.damage.regions:
            keys = list(region.timestamps)
            if keys and all(int(k[1:]) in self.connections for k in keys):
                names = {conn: topic for conn, (topic, _, _) in self.connections.items()}
                region.timestamps = by_topic(region.timestamps, names)
                region.topics = {k: len(v) for k, v in region.timestamps.items()}
                stamps = [t for v in region.timestamps.values() for t in v]
                region.start_ns, region.end_ns = min(stamps), max(stamps)
            elif region.messages == 0:
                region.topics = {}
        self.account_undefined()

    def topic_types(self) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for conn, (topic, msgtype, _) in self.connections.items():
            out[topic] = (msgtype, out.get(topic, (msgtype, 0))[1] + self.counts[conn])
        return out

    def _ids(self, topic: str) -> set[int]:
        return {c for c, (name, _, _) in self.connections.items() if name == topic}

    def defined_ids(self) -> set[int]:
        return set(self.connections)

    def _chunk_messages(self, entry: Chunk, wanted: set[int]) -> list[tuple[int, int, bytes]]:
        at = entry.offset
        (hlen,) = struct.unpack("<I", self._read(at, 4))
        header = parse_header(self._read(at + 4, hlen))
        (dlen,) = struct.unpack("<I", self._read(at + 4 + hlen, 4))
        plain = _decompress(self._read(at + 8 + hlen, dlen), header["compression"].decode())
        found = [(_time(h["time"]), struct.unpack("<I", h["conn"])[0], d)
                 for h, d in _records(plain) if h["op"][0] == OP_MESSAGE]
        return [m for m in found if m[1] in wanted]

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        if self._typestore is None:
            from rosbags.typesys import Stores, get_types_from_msg, get_typestore

            store = get_typestore(Stores.EMPTY)
            types: dict[str, Any] = {}
            for _, name, msgdef in self.connections.values():
                types.update(get_types_from_msg(msgdef, name))
            store.register(types)
            self._typestore = store
        return self._typestore.deserialize_ros1(raw, msgtype)


def _name(op: int) -> str:
    return {OP_CHUNK: "chunk", OP_MESSAGE: "message", OP_INDEX: "index data",
            OP_CONNECTION: "connection", OP_CHUNK_INFO: "chunk info"}.get(op, f"op {op}")

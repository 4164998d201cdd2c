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

"""The storage files of an output bag: MCAP through ``mcap``, sqlite3 through rosbags."""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_types_from_msg

from .qos import offered_qos_string
from .reader import humble_typestore

_CHUNK_BYTES = 4 << 20
LABEL_INFO = "vision_msgs/msg/LabelInfo"
# vision_msgs 4.x (Humble to Kilted), which the Humble type store lacks; the class first.
_VISION_MSGS = (("vision_msgs/msg/VisionClass", "uint16 class_id\nstring class_name\n"),
                (LABEL_INFO, "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\n"
                             "float32 threshold\n"))


def bag_typestore() -> Any:
    """Return the Humble type store with vision_msgs' LabelInfo registered in it."""
    store = humble_typestore()
    if LABEL_INFO not in store.types:
        for name, text in _VISION_MSGS:
            store.register(get_types_from_msg(text, name))
    return store


class McapFile:
    """An MCAP storage file written with Foxglove's ``mcap`` library (chunk compression)."""

    def __init__(self, path: Path, compression: str):
        from mcap.writer import CompressionType, Writer

        kind = {"none": CompressionType.NONE, "lz4": CompressionType.LZ4,
                "zstd": CompressionType.ZSTD}[compression]
        self.path = path
        self._fh = path.open("xb")
        self._writer = Writer(self._fh, chunk_size=_CHUNK_BYTES, compression=kind)
        self._writer.start(profile="ros2", library="canet_ros")
        self._schemas: dict[str, int] = {}
        self._sequence: dict[int, int] = {}

    def add_topic(self, topic: str, msgtype: str, offers: Sequence[Qos] = ()) -> int:
        if msgtype not in self._schemas:
            msgdef, _ = bag_typestore().generate_msgdef(msgtype, ros_version=2)
            self._schemas[msgtype] = self._writer.register_schema(
                msgtype, "ros2msg", msgdef.encode("utf-8"))
        # The key and string form rosbag2's MCAP plugin writes and reads (as in metadata.yaml).
        channel = self._writer.register_channel(
            topic, "cdr", self._schemas[msgtype],
            {"offered_qos_profiles": offered_qos_string(offers)})
        self._sequence[channel] = 0
        return channel

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        self._writer.add_metadata(name, data)

    def write(self, channel: int, timestamp: int, data: bytes | memoryview) -> None:
        self._sequence[channel] += 1
        self._writer.add_message(channel, timestamp, bytes(data), timestamp,
                                 self._sequence[channel])

    def close(self) -> None:
        try:
            self._writer.finish()
        finally:
            self._fh.close()

    def abort(self) -> None:
        self._fh.close()


class Sqlite3File:
    """rosbags' sqlite3 storage, committed by OutputBag after every whole frame.

    Per frame (3-5 messages): a SIGKILL or a full disk costs only the frame being written,
    and the frames the pipeline counts (once a frame's writes return) are those in the file;
    batches by time or size would lose more and leave counted frames uncommitted.
    ``synchronous=OFF``: a commit is in the OS page cache, which neither a killed process nor
    a full disk loses; an fsync only adds safety against an OS crash or power cut (MCAP
    output is never fsync'd either) and costs more than the write. Writer alone, 100 frames
    at the sample's 480x360 with an input copy, this VM's ext4, median of 5: 12 ms a frame
    committed once (rosbags), 14 ms per-frame commits, 33 ms with fsync (the model takes ~1 s
    a frame on this CPU). close() commits with FULL: a finished bag is fsync'd as before.
    ``cache_spill=OFF`` keeps an unfinished frame in memory (it spills over 2 MB), out of the
    file, so readers opening it immutable (rosbags, salvage) see exactly the last commit.
    """

    def __init__(self, path: Path):
        self._writer = Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3)
        self._writer.open()
        self._aborted = False
        # rosbags has no commit call; Writer.storage.conn (0.11) is outside its StorageWriter
        # protocol, so checked. Without it nothing is committed before close(), and a failed
        # write drops it all: the file never holds less than the counts say.
        db = getattr(getattr(self._writer, "storage", None), "conn", None)
        self._db = db if isinstance(db, sqlite3.Connection) else None
        if self._db is not None:  # outside a transaction: rosbags' schema script committed
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute("PRAGMA cache_spill=OFF")

    def add_topic(self, topic: str, msgtype: str, offers: Sequence[Qos]) -> Any:
        # Version 8: rosbags stores the integer form in the topics table.
        return self._writer.add_connection(topic, msgtype, typestore=bag_typestore(),
                                           offered_qos_profiles=offers)

    def write(self, connection: Any, timestamp: int, data: bytes | memoryview) -> None:
        self._writer.write(connection, timestamp, data)

    def commit(self) -> bool:
        """Commit what was written; False where this rosbags gives no way to."""
        if self._db is None:
            return False
        self._db.commit()
        return True

    def rollback(self) -> None:
        """Drop what was written since the last commit: everything, without commits."""
        if self._db is None:
            self.abort()
            return
        try:
            self._db.rollback()  # a no-op where SQLite already rolled back (SQLITE_FULL)
        except sqlite3.Error:
            self.abort()

    def close(self) -> None:
        if self._aborted:
            return
        if self._db is not None:  # rosbags' commit in close() is fsync'd, and with it the file
            self._db.commit()
            self._db.execute("PRAGMA synchronous=FULL")
        self._writer.close()

    def abort(self) -> None:
        """Close without committing: the file keeps its last commit, whatever fails here."""
        self._aborted = True
        with suppress(Exception):
            self._writer.abort()

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

"""Open ROS 1 / ROS 2 bags with rosbags, find image topics and stream their messages.

No ROS import: rosbags reads the files and owns the message types.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rosbags.highlevel import AnyReader

from ..errors import brief
from .errors import BagError
from .salvage import open_salvage, storage_files
from .salvage.damage import Damage, Recovered, SalvageSource
from .typestore import humble_typestore

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
ROS2_STORAGES = ("mcap", "sqlite3")

_MAGIC = {
    b"\x89MCAP0\r\n": ".mcap",
    b"SQLite format 3\x00": ".db3",
    b"#ROSBAG V2.0\n": ".bag",
}
_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3", ".bag": "ros1"}
_CAUSE_CHARS = 500  # a reader's message quoting a metadata value stays one readable line


def short_repr(value: object, limit: int = 80) -> str:
    """Return the repr of a value read from a bag's metadata, at most ``limit`` characters."""
    return brief(value, limit)


def clip(text: str, limit: int = _CAUSE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _sniff(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    return next((suffix for magic, suffix in _MAGIC.items() if head.startswith(magic)), None)


class MetadataError(BagError):
    """metadata.yaml is unreadable or not rosbag2 metadata (a bag whose storage may be fine)."""


def _check_metadata(path: Path) -> str:
    """Storage identifier of a ROS 2 bag folder, validated before rosbags sees it."""
    meta = path / "metadata.yaml"
    try:
        info = yaml.safe_load(meta.read_text(encoding="utf-8"))
        storage = info["rosbag2_bagfile_information"]["storage_identifier"]
    except OSError as exc:
        raise MetadataError(f"{meta}: cannot read ({exc.strerror or exc})") from None
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        why = " ".join(str(exc).split())  # YAML's messages span lines; errors are one line
        raise MetadataError(f"{meta}: not a rosbag2 metadata file ({type(exc).__name__}: "
                            f"{why})") from None
    if storage not in ROS2_STORAGES:
        raise BagError(f"{path}: unknown storage format {short_repr(storage)} in metadata.yaml "
                       f"(supported: {', '.join(ROS2_STORAGES)})")
    return str(storage)


def _check_quoted_fields(meta: Path) -> None:
    """Refuse what rosbags would quote whole when it refuses it (an alias bomb: gigabytes)."""
    try:
        info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        compression = info.get("compression_format")
    except Exception:  # rosbags reads it next and says what is wrong
        return
    if compression is not None and not isinstance(compression, str):
        raise BagError(f"{meta}: compression_format {short_repr(compression)} is not a string")


def detect_format(path: Path) -> str:
    """'mcap', 'sqlite3' (ROS 2) or 'ros1'; BagError for anything else.

    A bag folder whose metadata.yaml is missing (a recording that was never closed) counts
    as a bag when it holds only its own storage files (see ``storage_files``).
    """
    if not path.exists():
        raise BagError(f"{path}: no such file or directory")
    if path.is_dir():
        if not (path / "metadata.yaml").is_file():
            found = storage_files(path)
            if found is None:
                raise BagError(f"{path}: not a ROS 2 bag folder (no metadata.yaml)")
            return found[0]
        return _check_metadata(path)
    suffix = path.suffix.lower()
    looks_like = _sniff(path)
    if suffix not in _SUFFIXES:
        hint = (f"; its content looks like a {looks_like} file, rename it to end in {looks_like}"
                if looks_like else "")
        raise BagError(f"{path}: unknown storage format {suffix or '(no suffix)'!r} (expected a "
                       f"ROS 2 bag folder with metadata.yaml, a .mcap or .db3 file, or a ROS 1 "
                       f".bag){hint}")
    if path.stat().st_size == 0:
        raise BagError(f"{path}: empty file")
    if looks_like != suffix:
        hint = f"; its content looks like a {looks_like} file" if looks_like else ""
        raise BagError(f"{path}: corrupt or not a {_SUFFIXES[suffix]} bag (wrong file "
                       f"header){hint}")
    return _SUFFIXES[suffix]


def _check_connections(reader: AnyReader, where: Path) -> None:
    """Refuse topic entries that rosbags took from metadata.yaml without checking them.

    A name, type or count of the wrong kind would otherwise fail later, as a TypeError from
    ``reader.topics``; as an open failure it is salvaged (or refused) like other bad metadata.
    """
    for conn in reader.connections:
        for what, value, kind in (("topic name", conn.topic, str),
                                  ("message type", conn.msgtype, str),
                                  ("message count", conn.msgcount, int)):
            if not isinstance(value, kind) or isinstance(value, bool):
                noun = "a string" if kind is str else "an integer"
                raise BagError(f"{where}: {what} {short_repr(value)} is not {noun}")


class BagReadError(BagError):
    """Reading a topic failed part-way and salvage is off; ``cause`` is the reader's reason."""

    def __init__(self, message: str, cause: str = ""):
        super().__init__(message)
        self.cause = cause


def describe_exception(exc: BaseException) -> str:
    """Say in one line what went wrong, for a message that already names the file and place.

    A ``BagReadError`` gives its cause alone: segment-bag says where reading stopped itself.
    """
    if isinstance(exc, BagReadError) and exc.cause:
        return exc.cause
    text = str(exc).strip()
    return text if text else type(exc).__name__


@dataclass(frozen=True)
class TopicSummary:
    name: str
    msgtype: str
    count: int


class InputBag:
    """One input bag opened for reading; use as a context manager.

    A bag rosbags refuses, or that fails part-way, is read by a salvage reader instead when
    ``salvage`` is on; ``damage`` then says what was lost.
    """

    def __init__(self, path: str | Path, salvage: bool = True):
        self.path = Path(path)
        self.salvage = salvage
        self._bad_metadata: str | None = None  # why metadata.yaml cannot be used
        try:
            self.storage = detect_format(self.path)
        except MetadataError as exc:
            found = storage_files(self.path)
            if found is None:
                raise
            if not salvage:
                raise BagError(f"{exc}; run without --no-salvage to read the bag's storage "
                               f"files directly") from None
            self.storage, self._bad_metadata = found[0], str(exc)
        if not (self.path / "metadata.yaml").is_file() and self.path.is_dir():
            self._bad_metadata = "metadata.yaml is missing"
        self.is_ros1 = self.storage == "ros1"
        self.damage: Damage | None = None
        self._reader: AnyReader | None = None
        self._salvaged: SalvageSource | None = None

    def __enter__(self) -> InputBag:
        self.open_reader()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refuse(self, cause: str) -> BagError:
        return BagError(f"{self.path}: corrupt, truncated or unreadable bag ({cause}); run "
                        f"without --no-salvage to read what is still readable")

    def open_reader(self) -> None:
        paths = [self.path]
        bad_metadata = self._bad_metadata
        if bad_metadata:
            if not self.salvage:
                raise self._refuse(bad_metadata)
            paths = (storage_files(self.path) or ("", []))[1]
        reader = AnyReader(paths, default_typestore=humble_typestore())
        from_metadata = self.path.is_dir() and paths == [self.path]
        try:
            if from_metadata:
                _check_quoted_fields(self.path / "metadata.yaml")
            reader.open()
            _check_connections(reader, self.path / "metadata.yaml" if from_metadata else self.path)
        except Exception as exc:  # rosbags raises many types for damaged files
            with contextlib.suppress(Exception):
                reader.close()
            cause = clip(describe_exception(exc))
            if bad_metadata:
                cause = f"{bad_metadata}; {cause}"
            if not self.salvage:
                raise self._refuse(cause) from None
            self._start_salvage(cause)
            return
        self._reader = reader
        if bad_metadata:
            self.damage = Damage(self.storage, bad_metadata, "storage files read directly: "
                                 + ", ".join(p.name for p in paths))

    def _start_salvage(self, cause: str) -> None:
        self._salvaged = open_salvage(self.path, self.storage, cause)
        self.damage = self._salvaged.damage

    def close(self) -> None:
        if self._salvaged is not None:
            self._salvaged.close()
            self._salvaged = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except Exception:  # closing a damaged file must not hide the first error
                pass

    @property
    def reader(self) -> AnyReader:
        if self._reader is None:
            raise BagError(f"{self.path}: bag is not open")
        return self._reader

    def topics(self) -> dict[str, TopicSummary]:
        """Topics with their message counts as the bag states them (lost ones included)."""
        if self._salvaged is not None:
            damage = self._salvaged.damage
            return {name: TopicSummary(name, msgtype, count + (damage.lost_on(name) or 0))
                    for name, (msgtype, count) in self._salvaged.topic_types().items()}
        return {name: TopicSummary(name, info.msgtype or "(mixed types)", info.msgcount)
                for name, info in self.reader.topics.items()}

    def image_topics(self) -> dict[str, TopicSummary]:
        return {k: v for k, v in self.topics().items() if v.msgtype in IMAGE_TYPES}

    def _listing(self) -> str:
        images = self.image_topics()
        if not images:
            return "it has no sensor_msgs/Image or sensor_msgs/CompressedImage topics"
        return "image topics: " + ", ".join(f"{t.name} ({t.msgtype.rsplit('/', 1)[-1]}, "
                                            f"{t.count} msgs)" for t in images.values())

    def require_image_topic(self, topic: str, what: str = "topic") -> TopicSummary:
        """Return the named topic, which must hold Image or CompressedImage messages."""
        found = self.topics().get(topic)
        if found is None:
            raise BagError(f"{self.path}: {what} {topic!r} does not exist; {self._listing()}")
        if found.msgtype not in IMAGE_TYPES:
            raise BagError(f"{self.path}: {what} {topic!r} holds {found.msgtype}, not "
                           f"sensor_msgs/Image or CompressedImage; {self._listing()}")
        return found

    def select_topic(self, topic: str | None, exclude: Sequence[str] = ()) -> TopicSummary:
        """``topic`` when given, else the only image topic not in ``exclude``."""
        if topic:
            return self.require_image_topic(topic)
        candidates = [t for name, t in self.image_topics().items() if name not in exclude]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise BagError(f"{self.path}: no image topic to segment; {self._listing()}")
        raise BagError(f"{self.path}: several image topics, choose one with --topic; "
                       f"{self._listing()}")

    def messages(self, topic: str) -> Iterator[Recovered]:
        """Messages on ``topic`` in rosbags' order: receive time, raw bytes, position on topic.

        When rosbags fails part-way (a damaged chunk behind an intact index), reading goes
        on with the salvage reader, which gives every message the messages already read
        did not. Both read in the same order, but that order is not one time-ordered stream
        (a split bag is read file after file, whose clocks may go back between files; an
        unindexed MCAP in file order), so what was read is told apart by message, not by
        time: each salvaged message that matches one already read uses that one up.
        """
        if self._salvaged is not None:
            yield from self._salvaged.messages(topic)
            return
        connections = [c for c in self.reader.connections if c.topic == topic]
        if not connections:  # an empty filter would mean "every topic" to rosbags
            return
        read: Counter[int] = Counter()  # fingerprints of the messages rosbags gave
        position = 0
        try:
            for _, timestamp, raw in self.reader.messages(connections=connections):
                yield Recovered(timestamp, raw, position)
                read[_fingerprint(timestamp, raw)] += 1
                position += 1
        except Exception as exc:  # rosbags raises many types for damaged chunks
            if not self.salvage:
                raise self._read_failed(topic, position, exc) from None
            self._start_salvage(f"reading failed after {position} messages on {topic} "
                                f"({describe_exception(exc)})")
            assert self._salvaged is not None
            self._forgive_file_order()
            for msg in self._salvaged.messages(topic):
                key = _fingerprint(msg.timestamp, msg.raw)
                if read[key]:
                    read[key] -= 1
                    continue
                yield msg

    def _read_failed(self, topic: str, position: int, exc: Exception) -> BagReadError:
        """Return the error for a read that failed with salvage off: one line, naming the bag.

        Here, not in each reader of ``messages``, so none of them shows a rosbags traceback.
        """
        cause = describe_exception(exc)
        where = f"after {position} messages on {topic}" if position else f"at the start of {topic}"
        return BagReadError(f"{self.path}: corrupt or truncated bag, reading failed {where} "
                            f"({clip(cause)}); run without --no-salvage to read what is still "
                            f"readable", cause)

    def _forgive_file_order(self) -> None:
        """Report no damage where rosbags only refused an intact MCAP's order.

        rosbags will not read a file without a message index (no chunks: rosbag2's
        "fastwrite" preset) whose receive times go back; rosbag2 plays it in file order, as
        the salvage scan reads it. Where the scan found every record intact, nothing is lost.
        """
        salvaged, damage = self._salvaged, self.damage
        if (salvaged is not None and damage is not None and not damage.regions
                and not damage.notes and getattr(salvaged, "file_order", False)):
            self.damage = None

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        if self._reader is not None:
            return self.reader.deserialize(raw, msgtype)
        if self._salvaged is None:
            raise BagError(f"{self.path}: bag is not open")
        return self._salvaged.deserialize(raw, msgtype)


def _fingerprint(timestamp: int, raw: bytes) -> int:
    """Return what tells one message from another on a topic without hashing all its bytes.

    The start of a message holds its header (stamp, frame), the end the last of its data;
    with the receive time and length, two messages that agree on all of it are the same.
    """
    return hash((timestamp, len(raw), bytes(raw[:64]), bytes(raw[-64:])))


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def frame_stamp(header: Any, receive_ns: int) -> int:
    """Return what names a frame: its header stamp, or its receive time if a driver left it 0.

    extract-frames names files by it and ground truth is matched by it, so they agree.
    """
    return stamp_ns(header) or int(receive_ns)


def ros2_header(header: Any) -> Any:
    """Build a Humble std_msgs/Header with the same stamp and frame (ROS 1 adds a seq)."""
    types = humble_typestore().types
    stamp = types["builtin_interfaces/msg/Time"](sec=int(header.stamp.sec),
                                                 nanosec=int(header.stamp.nanosec))
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=str(header.frame_id))

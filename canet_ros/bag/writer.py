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

"""The output ROS 2 bag: what the node would publish for a camera, as Humble CDR.

Like the node, it says what each label id means: one vision_msgs/LabelInfo message on
``<camera>/segmentation/label_info`` and, in MCAP, a metadata record with the class names
and colours, so a bag is understandable without the report.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Qos

from ..errors import missing_package
from ..image_codec import array_to_image_fields
from .errors import BagError
from .metadata import FileSpan, TopicCount, humble_metadata, write_metadata
from .qos import IMAGE_OUTPUT_OFFER, LABEL_INFO_OFFER, offered_qos_string
from .reader import COMPRESSED, IMAGE, describe_exception, humble_typestore
from .storage_writers import LABEL_INFO, McapFile, Sqlite3File, bag_typestore

STORAGES = ("mcap", "sqlite3")
COMPRESSIONS = ("none", "lz4", "zstd")
# MCAP chunk compression by default; sqlite3 has no chunks, and rosbag2's per-message
# compression would make the bag unreadable for tools that do not implement it.
DEFAULT_COMPRESSION = {"mcap": "zstd", "sqlite3": "none"}
CLASSES_METADATA = "canet_ros.classes"  # the MCAP metadata record's name
# The QoS each topic is recorded with (qos.py): the node's offers, so `ros2 bag play`
# re-offers label_info latched. The copied input ("input") gets none, i.e. the player's
# default reliable offer: what its driver offered is not known here (ROS 1 bags have no
# QoS), and a reliable writer is matched by reliable and best-effort subscribers alike.
_OFFERS = {"labels": IMAGE_OUTPUT_OFFER, "color": IMAGE_OUTPUT_OFFER,
           "overlay": IMAGE_OUTPUT_OFFER, "label_info": LABEL_INFO_OFFER}


def check_storage(storage: str, compression: str | None) -> str:
    """Return the compression an output bag gets; BagError for combinations that do not exist."""
    if storage not in STORAGES:
        raise BagError(f"unknown output storage {storage!r} (choose mcap or sqlite3)")
    chosen = DEFAULT_COMPRESSION[storage] if compression is None else compression
    if chosen not in COMPRESSIONS:
        raise BagError(f"unknown --compression {chosen!r} (choose none, lz4 or zstd)")
    if storage == "sqlite3" and chosen != "none":
        raise BagError(f"--compression {chosen} needs --storage mcap (MCAP compresses its "
                       f"chunks; sqlite3 output is written uncompressed)")
    return chosen


def camera_namespace(topic: str) -> str:
    """``/cam_front/image_raw/compressed`` -> ``/cam_front``; ``/image`` -> ``""``."""
    name = topic.rstrip("/")
    if name.endswith("/compressed"):
        name = name[: -len("/compressed")]
    return name.rsplit("/", 1)[0] if "/" in name else ""


@dataclass(frozen=True)
class OutputTopics:
    labels: str
    color: str
    overlay: str

    @classmethod
    def for_input(cls, topic: str) -> OutputTopics:
        base = camera_namespace(topic) + "/segmentation"
        return cls(f"{base}/labels", f"{base}/color", f"{base}/overlay")

    def as_dict(self) -> dict[str, str]:
        return {"labels": self.labels, "color": self.color, "overlay": self.overlay}


def label_info_message(classes: Any, header: Any) -> Any:
    """Build LabelInfo as the node publishes it: id i is ``classes.names[i]``, no threshold."""
    types = bag_typestore().types
    return types[LABEL_INFO](header=header, threshold=0.0, class_map=[
        types["vision_msgs/msg/VisionClass"](class_id=index, class_name=name)
        for index, name in enumerate(classes.names)])


def classes_metadata(classes: Any) -> dict[str, str]:
    """Build the MCAP metadata record: names and RGB colours by label id, as JSON."""
    return {"class_names": json.dumps(list(classes.names)),
            "palette_rgb": json.dumps([list(map(int, c)) for c in classes.colors]),
            "ignore_index": str(int(classes.ignore_index))}


def image_message(array: np.ndarray, encoding: str, header: Any) -> Any:
    fields = array_to_image_fields(array, encoding, header)
    fields["data"] = np.frombuffer(fields["data"], dtype=np.uint8)
    return humble_typestore().types[IMAGE](**fields)


def copy_of_ros1_message(msg: Any, msgtype: str, header: Any) -> Any:
    """Convert a ROS 1 Image/CompressedImage to its Humble equivalent (drops the seq)."""
    types = humble_typestore().types
    if msgtype == COMPRESSED:
        return types[COMPRESSED](header=header, format=msg.format, data=msg.data)
    return types[IMAGE](header=header, height=msg.height, width=msg.width,
                        encoding=msg.encoding, is_bigendian=msg.is_bigendian, step=msg.step,
                        data=msg.data)


class OutputBag:
    """The output ROS 2 bag: MCAP through ``mcap``, sqlite3 through rosbags.

    Either way metadata.yaml is written last, in the version Humble reads (metadata.py).
    Must be opened, written and closed from one thread: the sqlite3 storage refuses
    cross-thread use.
    """

    def __init__(self, path: Path, storage: str, topics: OutputTopics,
                 copy_topic: tuple[str, str] | None = None, compression: str | None = None):
        self.compression = check_storage(storage, compression)
        self.path = path
        self.storage = storage
        self.topics = topics
        self.copy_topic = copy_topic
        self.classes: Any = None  # a ClassSet: label_info and the metadata record
        self._file: Any = None
        self._conns: dict[str, Any] = {}
        self._types: dict[str, tuple[str, str]] = {}  # key -> (topic, type)
        self._counts: dict[str, int] = {}
        self._times = [2**63 - 1, 0]
        self.messages = 0
        self.frames = 0  # frames whose outputs (and input copy) were all written
        # At the last commit: frames, messages, counts, times (what the sqlite3 file holds).
        self._committed: tuple[int, int, dict[str, int], list[int]] = (0, 0, {}, self._times)

    @property
    def committed_frames(self) -> int | None:
        """Return the frames committed to the sqlite3 file; None for MCAP.

        It equals ``frames``, also after a failed write (its frame is rolled back); an
        MCAP file's salvage keeps whole chunks, not frames.
        """
        return self._committed[0] if self.storage == "sqlite3" else None

    @property
    def storage_file(self) -> Path:
        return self.path / f"{self.path.name}{'.mcap' if self.storage == 'mcap' else '.db3'}"

    def _wanted(self) -> dict[str, tuple[str, str]]:
        wanted = {key: (topic, IMAGE) for key, topic in self.topics.as_dict().items()}
        if self.copy_topic:
            wanted["input"] = self.copy_topic
        if self.classes is not None:
            namespace = self.topics.labels.rsplit("/", 1)[0]
            wanted["label_info"] = (f"{namespace}/label_info", LABEL_INFO)
        return wanted

    @staticmethod
    def _offers(key: str) -> tuple[Qos, ...]:
        return (_OFFERS[key],) if key in _OFFERS else ()

    def describe_classes(self, classes: Any) -> None:
        """Also write what each label id means (call before create())."""
        self.classes = classes

    def create(self) -> None:
        try:
            if self.storage == "mcap":
                self.path.mkdir(parents=True)
                self._file = McapFile(self.storage_file, self.compression)
                add = self._file.add_topic
            else:
                self._file = Sqlite3File(self.path)
                add = self._file.add_topic
            for key, (topic, msgtype) in self._wanted().items():
                self._conns[key] = add(topic, msgtype, self._offers(key))
                self._types[key] = (topic, msgtype)
                self._counts[key] = 0
            if self.classes is not None and self.storage == "mcap":
                self._file.add_metadata(CLASSES_METADATA, classes_metadata(self.classes))
            self._commit()  # the topics: a run killed before its first frame names them
        except Exception as exc:
            if self._file is not None:
                self._file.abort()
            cause = missing_package(exc) or describe_exception(exc)  # mcap: how to install
            raise BagError(f"{self.path}: cannot create output bag ({cause})") from None

    def write_frame(self, timestamp: int, header: Any, labels: np.ndarray, color: np.ndarray,
                    overlay: np.ndarray, order: str) -> None:
        """Write a frame's outputs; with a copied input, the frame ends at write_input."""
        encoding = "mono8" if labels.dtype == np.uint8 else "mono16"
        with self._frame_part(ends_frame=self.copy_topic is None):
            if self.classes is not None and self._counts["label_info"] == 0:
                # Once, at the first frame's time: a replay publishes it before any label.
                self._write("label_info", timestamp, label_info_message(self.classes, header))
            self._write("labels", timestamp, image_message(labels, encoding, header))
            self._write("color", timestamp, image_message(color, "rgb8", header))
            self._write("overlay", timestamp, image_message(overlay, f"{order}8", header))

    def write_input(self, timestamp: int, raw: bytes | None, msg: Any | None) -> None:
        """Copy the input message: its own CDR bytes (ROS 2) or a re-serialised one (ROS 1)."""
        with self._frame_part(ends_frame=True):
            if raw is not None:
                self._raw("input", timestamp, raw)
            elif msg is not None:
                self._write("input", timestamp, msg)

    @contextmanager
    def _frame_part(self, ends_frame: bool) -> Iterator[None]:
        """Commit at a frame's end; a failed write takes the file back to the last commit."""
        try:
            yield
            if ends_frame:
                self.frames += 1
                self._commit()
        except BaseException:
            if self.storage == "sqlite3" and self._file is not None:
                self._file.rollback()
                self._restore_committed()
            raise

    def _commit(self) -> None:
        if self.storage == "sqlite3" and self._file.commit():
            self._mark_committed()

    def _mark_committed(self) -> None:
        self._committed = (self.frames, self.messages, dict(self._counts), list(self._times))

    def _restore_committed(self) -> None:
        """Make the counts, which metadata.yaml is written from, say what the file holds."""
        self.frames, self.messages, counts, times = self._committed
        self._counts = {key: counts.get(key, 0) for key in self._counts}
        self._times = list(times)

    def _write(self, key: str, timestamp: int, msg: Any) -> None:
        data = bag_typestore().serialize_cdr(msg, msg.__msgtype__)
        self._raw(key, timestamp, data)

    def _raw(self, key: str, timestamp: int, data: bytes | memoryview) -> None:
        if self._file is None:
            raise BagError(f"{self.path}: output bag is not open")
        try:
            self._file.write(self._conns[key], timestamp, data)
        except OSError as exc:
            raise BagError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self.messages += 1
        self._counts[key] += 1
        self._times = [min(self._times[0], timestamp), max(self._times[1], timestamp)]

    def close(self) -> None:
        """Write the index and metadata.yaml, so a partial bag still opens."""
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
            if self.storage == "sqlite3":
                self._mark_committed()
            self._write_metadata()
        except Exception as exc:
            file.abort()
            if self.storage == "sqlite3":  # abort kept the last commit: describe it
                self._restore_committed()
                with suppress(Exception):
                    self._write_metadata()
            raise BagError(f"{self.path}: cannot finish output bag "
                           f"({describe_exception(exc)})") from None

    def _write_metadata(self) -> None:
        write_metadata(self.path, humble_metadata(
            self.storage, [FileSpan(self.storage_file.name, self._times[0], self._times[1],
                                    self.messages)],
            [TopicCount(topic, msgtype, self._counts[key], offered_qos_string(self._offers(key)))
             for key, (topic, msgtype) in self._types.items()]))

    def size_bytes(self) -> int:
        """Bytes on disk of the bag folder (storage file and metadata.yaml)."""
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

"""The output ROS 2 bag: what the node would publish for a camera, as Humble CDR."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from ..image_codec import array_to_image_fields
from .errors import BagError
from .reader import COMPRESSED, IMAGE, describe_exception, humble_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# rosbags writes metadata version 8 or 9; 9 changed the QoS encoding, 8 is the older one.
BAG_VERSION = 8


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
    """A rosbags Writer for the segmentation topics (and optionally the input topic).

    Must be opened, written and closed from one thread: the sqlite3 storage refuses
    cross-thread use.
    """

    def __init__(self, path: Path, storage: str, topics: OutputTopics,
                 copy_topic: tuple[str, str] | None = None):
        if storage not in STORAGES:
            raise BagError(f"unknown output storage {storage!r} (choose mcap or sqlite3)")
        self.path = path
        self.storage = storage
        self.topics = topics
        self.copy_topic = copy_topic
        self._writer: Writer | None = None
        self._conns: dict[str, Any] = {}
        self.messages = 0

    def create(self) -> None:
        writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[self.storage])
        try:
            writer.open()
            store = humble_typestore()
            for key, topic in self.topics.as_dict().items():
                self._conns[key] = writer.add_connection(topic, IMAGE, typestore=store)
            if self.copy_topic:
                topic, msgtype = self.copy_topic
                self._conns["input"] = writer.add_connection(topic, msgtype, typestore=store)
        except Exception as exc:
            writer.abort()
            raise BagError(f"{self.path}: cannot create output bag "
                           f"({describe_exception(exc)})") from None
        self._writer = writer

    def write_frame(self, timestamp: int, header: Any, labels: np.ndarray, color: np.ndarray,
                    overlay: np.ndarray, order: str) -> None:
        encoding = "mono8" if labels.dtype == np.uint8 else "mono16"
        self._write("labels", timestamp, image_message(labels, encoding, header))
        self._write("color", timestamp, image_message(color, "rgb8", header))
        self._write("overlay", timestamp, image_message(overlay, f"{order}8", header))

    def write_input(self, timestamp: int, raw: bytes | None, msg: Any | None) -> None:
        """Copy the input message: its own CDR bytes (ROS 2) or a re-serialised one (ROS 1)."""
        if raw is not None:
            self._raw("input", timestamp, raw)
        elif msg is not None:
            self._write("input", timestamp, msg)

    def _write(self, key: str, timestamp: int, msg: Any) -> None:
        data = humble_typestore().serialize_cdr(msg, msg.__msgtype__)
        self._raw(key, timestamp, data)

    def _raw(self, key: str, timestamp: int, data: bytes | memoryview) -> None:
        if self._writer is None:
            raise BagError(f"{self.path}: output bag is not open")
        try:
            self._writer.write(self._conns[key], timestamp, data)
        except OSError as exc:
            raise BagError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self.messages += 1

    def close(self) -> None:
        """Write the index and metadata.yaml, so a partial bag still opens."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as exc:
            writer.abort()
            raise BagError(f"{self.path}: cannot finish output bag "
                           f"({describe_exception(exc)})") from None

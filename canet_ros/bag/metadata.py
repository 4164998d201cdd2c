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

"""metadata.yaml for output bags, in the version ROS 2 Humble writes and reads (5).

Humble's rosbag2 (``rosbag2_storage/src/rosbag2_storage/metadata_io.cpp``, humble branch)
writes version 5 with exactly these keys; Iron, Jazzy and later read version 5 too (the
fields added after it are read only when the file's version has them). rosbags writes
version 8 or 9, which adds ``type_description_hash``, ``custom_data`` and ``ros_distro``
and, in 9, a QoS list instead of a QoS string. Writing 5 keeps one file that every
distribution from Humble on reads as it is.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HUMBLE_METADATA_VERSION = 5
_NO_FOLDING = 1 << 30


@dataclass(frozen=True)
class TopicCount:
    name: str
    msgtype: str
    count: int
    # rosbag2's string form (qos.offered_qos_string); '' means the player's default.
    offered_qos_profiles: str = ""


@dataclass(frozen=True)
class FileSpan:
    """One storage file: name relative to the bag folder, message times and count."""

    name: str
    start_ns: int
    end_ns: int
    count: int


def _span(start: int, end: int, count: int) -> tuple[dict[str, int], dict[str, int]]:
    start = start if count else 0
    return ({"nanoseconds_since_epoch": start},
            {"nanoseconds": max(0, end - start) if count else 0})


def humble_metadata(storage: str, files: Sequence[FileSpan], topics: Sequence[TopicCount],
                    compression_format: str = "", compression_mode: str = "") -> dict[str, Any]:
    """Return the ``rosbag2_bagfile_information`` mapping, keys in the order Humble writes them."""
    total = sum(f.count for f in files)
    written = [f for f in files if f.count]
    start, duration = _span(min((f.start_ns for f in written), default=0),
                            max((f.end_ns for f in written), default=0), total)
    entries = []
    for f in files:
        f_start, f_duration = _span(f.start_ns, f.end_ns, f.count)
        entries.append({"path": f.name, "starting_time": f_start, "duration": f_duration,
                        "message_count": f.count})
    return {
        "version": HUMBLE_METADATA_VERSION,
        "storage_identifier": storage,
        "duration": duration,
        "starting_time": start,
        "message_count": total,
        "topics_with_message_count": [
            {"topic_metadata": {"name": t.name, "type": t.msgtype,
                                "serialization_format": "cdr",
                                "offered_qos_profiles": t.offered_qos_profiles},
             "message_count": t.count} for t in topics],
        "compression_format": compression_format,
        "compression_mode": compression_mode,
        "relative_file_paths": [f.name for f in files],
        "files": entries,
    }


def write_metadata(folder: Path, info: dict[str, Any]) -> Path:
    """Write ``folder/metadata.yaml`` atomically (a crash leaves the old file or none)."""
    path = folder / "metadata.yaml"
    tmp = folder / "metadata.yaml.tmp"
    # No line folding: the QoS strings stay one double-quoted line, as yaml-cpp writes them.
    text = yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False,
                          default_flow_style=False, width=_NO_FOLDING)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

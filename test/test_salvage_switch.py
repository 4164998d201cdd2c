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

"""Switching from rosbags to the salvage reader where rosbags' order is not one time order.

rosbags reads a split bag file after file, each file by time, so where the clock goes back
between files (sim time over a looping source) the read goes back too; it refuses an MCAP
without a message index (no chunks: rosbag2's "fastwrite" preset) whose times go back,
which rosbag2 plays in file order. Every intact message must come exactly once, in the
order rosbags gives the intact bag (here from rosbags itself), at its intact position.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from test_bag_helpers import BASE_NS, HUMBLE, Msg, raw_image, write_bag
from test_salvage_split_missing import _merge_metadata
from test_salvage_time_order import CAM, LOOP, STEP, cut_in_summary, rosbags_order, salvaged

# (frame, receive time in STEP units) per storage file; file 1's clock starts before file 0's
FILES = [[(0, 10), (1, 11), (2, 12), (3, 13)], [(4, 0), (5, 1), (6, 2), (7, 3)]]


def write_mcap(path: Path, frames: Sequence[tuple[int, int]], chunked: bool = True) -> Path:
    """Frames in list order, one a chunk with CRCs (or no chunks at all), schema in-chunk."""
    msgdef, _ = HUMBLE.generate_msgdef("sensor_msgs/msg/Image", ros_version=2)
    with path.open("wb") as fh:
        writer = McapWriter(fh, chunk_size=1, use_chunking=chunked,
                            compression=CompressionType.NONE)
        writer.start(profile="ros2", library="test")
        sid = writer.register_schema("sensor_msgs/msg/Image", "ros2msg", msgdef.encode())
        cid = writer.register_channel(CAM, "cdr", sid, {"offered_qos_profiles": ""})
        for frame, unit in frames:
            msg = raw_image(HUMBLE, frame)
            t = BASE_NS + unit * STEP
            writer.add_message(cid, t, HUMBLE.serialize_cdr(msg, msg.__msgtype__), t, frame)
        writer.finish()
    return path


def split_bag(folder: Path, files: Sequence[Sequence[tuple[int, int]]] = FILES) -> Path:
    """Write a rosbag2 folder of one MCAP file per entry, metadata.yaml as rosbag2 writes it."""
    folder.mkdir()
    parts, names = [], []
    for k, frames in enumerate(files):
        part = folder.parent / f"{folder.name}_part{k}"
        write_bag(part, [Msg(CAM, BASE_NS + unit * STEP, raw_image(HUMBLE, frame))
                         for frame, unit in frames])
        parts.append(yaml.safe_load((part / "metadata.yaml").read_text())
                     ["rosbag2_bagfile_information"])
        shutil.rmtree(part)
        names.append(f"{folder.name}_{k}.mcap")
        write_mcap(folder / names[-1], frames)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(_merge_metadata(parts, names)))
    return folder


def break_chunk(path: Path, frame: int) -> None:
    """Make the chunk holding ``frame`` fail its CRC check."""
    data = bytearray(path.read_bytes())
    data[data.index(bytes(raw_image(HUMBLE, frame).data[:64])) + 10] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("k", "frame"), [(0, 2), (1, 6)])  # the later clock's file, the earlier
def test_split_bag_whose_clock_goes_back_switches_without_repeats_or_drops(
        tmp_path, k, frame):
    bag_dir = split_bag(tmp_path / "rec")
    expected = rosbags_order(bag_dir)
    assert expected == list(range(8))  # file after file, although file 1 is earlier
    break_chunk(bag_dir / f"rec_{k}.mcap", frame)
    read, bag = salvaged(bag_dir)
    assert "reading failed after" in bag.damage.cause  # rosbags read part, salvage the rest
    assert read == [(f, i) for i, f in enumerate(expected) if f != frame]
    assert bag.damage.lost_on(CAM) == 1


def test_unchunked_mcap_whose_times_go_back_is_read_whole_in_file_order(tmp_path):
    """Read all of it, in file order as rosbag2 plays it, with no damage (rosbags refuses it)."""
    path = write_mcap(tmp_path / "fastwrite.mcap", list(enumerate(LOOP)), chunked=False)
    with pytest.raises(Exception, match="not in timestamp order"):
        rosbags_order(path)
    read, bag = salvaged(path)
    assert read == [(i, i) for i in range(len(LOOP))]
    assert bag.damage is None


def test_unchunked_mcap_cut_short_reads_in_file_order(tmp_path):
    """A fastwrite recording that was never closed: file order, the cut message lost."""
    path = write_mcap(tmp_path / "fastwrite.mcap", list(enumerate(LOOP)), chunked=False)
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: data.index(bytes(raw_image(HUMBLE, 8).data[:64])) + 10])
    read, bag = salvaged(cut)
    assert read == [(i, i) for i in range(8)]
    assert bag.damage is not None and bag.damage.messages_lost() == 1


@pytest.mark.parametrize("metadata", [True, False])
def test_frames_whose_channel_definition_was_lost_count_as_lost_of_unknown_topic(
        tmp_path, metadata):
    """The lost chunk held the channel definition: the file's other frames have no topic.

    The bag's other files define their channels too, but a recorder numbers them afresh in
    each file (rosbag2 re-creates a split's topics in its own map order), and
    metadata.yaml's counts cannot tell two topics of equal counts apart: taking another
    file's definition put a stereo pair's frames on each other's topics.
    """
    bag_dir = split_bag(tmp_path / "rec")
    if not metadata:
        (bag_dir / "metadata.yaml").unlink()
    path = bag_dir / "rec_1.mcap"
    break_chunk(path, 4)
    cut_in_summary(path, path)
    read, bag = salvaged(bag_dir)
    assert read == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert bag.damage.lost_on(CAM) is None  # four gone: one in the chunk, three of no topic
    assert bag.damage.messages_lost() == 4

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

"""A damaged bag whose receive times go back is read as rosbags reads the intact one.

A use_sim_time recording of a looping source writes times that go back, so file order is
not time order. rosbags reads an intact bag by time (the expected order here always comes
from rosbags reading the intact file), so a salvaged copy must give the same messages in
the same order, at the same positions on the topic, or index-named ground truth and
extract-frames' positions go to other frames. The merge must stay lazy: a chunk is read
only when the merge reaches it (counted here), not every chunk up front.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from test_bag_helpers import (
    BASE_NS,
    HUMBLE,
    NOETIC,
    image_array,
    make_checkpoint,
    raw_image,
    read_bag,
    shared_engine,
    stamp,
)

from canet_ros.bag import InputBag, SegmentOptions, segment_bag
from canet_ros.bag.extract import ExtractOptions, FramePicker, extract_frames
from canet_ros.bag.salvage.mcap import McapSalvage
from canet_ros.bag.salvage.sqlite import SqliteSalvage

CAM = "/cam/image_raw"
STEP = 50_000_000  # ns per unit of the write-order lists below
# Receive times (in STEP units) in the order written: the clock goes back after 6 and
# again at the end, with ties across chunks (3, 0) and inside one chunk of three (5, 5).
LOOP = [0, 2, 4, 6, 1, 3, 5, 5, 3, 0, 7]


def write_mcap(path: Path, units: Sequence[int], chunk_bytes: int = 1) -> Path:
    """Frame i at receive time units[i] * STEP, written in list order; MCAP with CRCs."""
    msgdef, _ = HUMBLE.generate_msgdef("sensor_msgs/msg/Image", ros_version=2)
    with path.open("wb") as fh:
        writer = McapWriter(fh, chunk_size=chunk_bytes, compression=CompressionType.NONE)
        writer.start(profile="ros2", library="test")
        sid = writer.register_schema("sensor_msgs/msg/Image", "ros2msg", msgdef.encode())
        cid = writer.register_channel(CAM, "cdr", sid, {"offered_qos_profiles": ""})
        for i, unit in enumerate(units):
            msg = raw_image(HUMBLE, i)
            t = BASE_NS + unit * STEP
            writer.add_message(cid, t, HUMBLE.serialize_cdr(msg, msg.__msgtype__), t, i)
        writer.finish()
    return path


def cut_in_summary(source: Path, target: Path) -> Path:
    """Cut the file 10 bytes into its summary: every message is still there."""
    data = source.read_bytes()
    footer = data[-8 - 29:-8]
    assert footer[0] == 0x02
    summary_start = struct.unpack("<Q", footer[9:17])[0]
    target.write_bytes(data[: summary_start + 10])
    return target


def frame_of(msg) -> int:
    """Which frame(i) a message carries, from its header stamp."""
    return next(i for i in range(64) if stamp(i) == (msg.header.stamp.sec,
                                                     msg.header.stamp.nanosec))


def rosbags_order(path: Path, topic: str = CAM) -> list[int]:
    """List the frames in the order rosbags reads the intact bag (its index is the position)."""
    with AnyReader([path], default_typestore=HUMBLE) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [frame_of(reader.deserialize(raw, c.msgtype))
                for c, _, raw in reader.messages(connections=conns)]


def salvaged(path: Path) -> tuple[list[tuple[int, int | None]], InputBag]:
    """(frame, position) as InputBag reads ``path``; the bag comes back closed."""
    with InputBag(path) as bag:
        msgtype = bag.topics()[CAM].msgtype
        read = [(frame_of(bag.deserialize(m.raw, msgtype)), m.position)
                for m in bag.messages(CAM)]
    return read, bag


@pytest.mark.parametrize("chunk_bytes", [1, 20_000])  # one message a chunk; three
def test_mcap_cut_in_summary_reads_in_rosbags_order(tmp_path, chunk_bytes):
    intact = write_mcap(tmp_path / "loop.mcap", LOOP, chunk_bytes)
    expected = rosbags_order(intact)
    assert expected != list(range(len(LOOP)))  # file order is not time order here
    read, bag = salvaged(cut_in_summary(intact, tmp_path / "cut.mcap"))
    assert bag.damage is not None and bag.damage.messages_lost() == 0
    assert read == [(frame, i) for i, frame in enumerate(expected)]


def test_ros1_without_index_reads_in_rosbags_order(tmp_path):
    """Ties go to the lower connection first, then the earlier chunk, as rosbags merges."""
    intact = tmp_path / "loop.bag"
    writer = Writer1(intact)
    writer.chunk_threshold = 20_000  # two or three messages a chunk
    writer.open()
    first = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=NOETIC,
                                  callerid="/a")
    second = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=NOETIC,
                                   callerid="/b")
    for i, unit in enumerate(LOOP):
        msg = raw_image(NOETIC, i)
        conn = second if i % 3 == 0 else first  # the tie at 0 and 3: /b is written first
        writer.write(conn, BASE_NS + unit * STEP, NOETIC.serialize_ros1(msg, msg.__msgtype__))
    writer.close()
    data = intact.read_bytes()
    header = data[17:17 + struct.unpack("<I", data[13:17])[0]]
    at = header.find(b"index_pos=")
    index_pos = struct.unpack("<Q", header[at + 10:at + 18])[0]
    cut = tmp_path / "cut.bag"
    cut.write_bytes(data[:index_pos])  # all the chunks, no index
    expected = rosbags_order(intact)
    read, bag = salvaged(cut)
    assert bag.damage is not None and bag.damage.messages_lost() == 0
    assert read == [(frame, i) for i, frame in enumerate(expected)]


def test_sqlite_rows_come_in_timestamp_then_row_order(tmp_path):
    """Read as rosbags reads ORDER BY timestamp: ties in row order (the timestamp index's)."""
    folder = tmp_path / "loop"
    with Writer2(folder, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=HUMBLE)
        for i, unit in enumerate(LOOP):
            msg = raw_image(HUMBLE, i)
            writer.write(conn, BASE_NS + unit * STEP,
                         HUMBLE.serialize_cdr(msg, msg.__msgtype__))
    expected = rosbags_order(folder)
    source = SqliteSalvage(folder / "loop.db3", "test")
    try:
        topic = "sensor_msgs/msg/Image"
        read = [(frame_of(source.deserialize(m.raw, topic)), m.position)
                for m in source.messages(CAM)]
        times = source.times(CAM)
    finally:
        source.close()
    assert read == [(frame, i) for i, frame in enumerate(expected)]
    assert times == sorted(BASE_NS + unit * STEP for unit in LOOP)


def test_a_lost_chunk_keeps_the_intact_positions_of_the_others(tmp_path):
    """Its message index (after it) gives its time, so every other frame keeps its place."""
    intact = write_mcap(tmp_path / "loop.mcap", LOOP)
    expected = rosbags_order(intact)
    data = bytearray(intact.read_bytes())
    payload = bytes(raw_image(HUMBLE, 6).data[:64])  # frame 6: LOOP[6] = 5
    data[data.index(payload) + 10] ^= 0xFF  # its chunk now fails its CRC
    damaged = tmp_path / "crc.mcap"
    damaged.write_bytes(bytes(data))
    read, bag = salvaged(damaged)
    assert bag.damage is not None and bag.damage.messages_lost() == 1
    assert read == [(frame, i) for i, frame in enumerate(expected) if frame != 6]


def test_switching_to_salvage_mid_read_keeps_rosbags_order(tmp_path):
    """Read the intact summary as rosbags does until the damaged chunk; salvage goes on after it."""
    intact = write_mcap(tmp_path / "loop.mcap", LOOP)
    expected = rosbags_order(intact)
    data = bytearray(intact.read_bytes())
    payload = bytes(raw_image(HUMBLE, 4).data[:64])  # frame 4: LOOP[4] = 1, read early
    data[data.index(payload) + 10] ^= 0xFF
    damaged = tmp_path / "crc.mcap"
    damaged.write_bytes(bytes(data))
    read, bag = salvaged(damaged)
    # rosbags read frames 0 and 9, both at time 0: salvage skips both, then goes on at 1
    assert "reading failed after 2 messages" in bag.damage.cause
    assert read == [(frame, i) for i, frame in enumerate(expected) if frame != 4]


def test_a_cut_of_unknown_times_leaves_positions_unknown_where_the_clock_went_back(
        tmp_path):
    """ROS 1 cut inside its last chunk: the chunk's times are gone with its index.

    In a recording whose readable part is in time order the lost chunk is taken to follow
    the last one read (docs/segment_bag.md, Damaged bags); where the clock went back, it
    could hold any times, so no position is claimed.
    """
    for name, units, positions in (("ordered", range(6), list(range(5))),
                                   ("loop", [0, 2, 4, 1, 3, 5], [None] * 5)):
        bag = tmp_path / f"{name}.bag"
        writer = Writer1(bag)
        writer.chunk_threshold = 1
        writer.open()
        conn = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=NOETIC)
        for i, unit in enumerate(units):
            msg = raw_image(NOETIC, i)
            writer.write(conn, BASE_NS + unit * STEP, NOETIC.serialize_ros1(msg,
                                                                            msg.__msgtype__))
        writer.close()
        data = bag.read_bytes()
        payload = bytes(raw_image(NOETIC, len(units) - 1).data[:64])
        cut = tmp_path / f"{name}_cut.bag"
        cut.write_bytes(data[: data.index(payload) + 100])  # inside the last chunk
        read, opened = salvaged(cut)
        assert opened.damage.messages_lost() is None
        by_time = sorted(range(len(units) - 1), key=lambda i: units[i])
        assert read == list(zip(by_time, positions, strict=True))


def test_chunks_are_read_only_when_the_merge_reaches_them(tmp_path, monkeypatch):
    """Two passes of 150 chunks each, interleaved in time: at most two chunks are held."""
    units = [2 * k for k in range(150)] + [2 * k + 1 for k in range(150)]
    source = cut_in_summary(write_mcap(tmp_path / "long.mcap", units), tmp_path / "cut.mcap")
    reads = []
    real = McapSalvage._chunk_messages

    def counted(self, entry, wanted):
        reads.append(entry.offset)
        return real(self, entry, wanted)

    monkeypatch.setattr(McapSalvage, "_chunk_messages", counted)
    held = []
    with InputBag(source) as bag:
        for n, msg in enumerate(bag.messages(CAM), 1):
            held.append(len(reads) - n)  # chunks read whose message is not yet handed out
            assert msg.position == n - 1
    assert n == len(units) and len(reads) == len(set(reads)) == len(units)
    assert max(held) <= 1


def test_extract_frames_on_a_salvaged_loop_bag_spans_the_whole_recording(tmp_path):
    """One frame per slot over the earliest to latest time, positions of the intact bag."""
    seconds = [4, 5, 6, 7, 0, 1, 2, 3]  # the second half of a loop written first
    intact = write_mcap(tmp_path / "loop.mcap", [t * 1_000_000_000 // STEP for t in seconds])
    expected = rosbags_order(intact)
    cut = cut_in_summary(intact, tmp_path / "cut.mcap")
    report = extract_frames(ExtractOptions(source=cut, outdir=tmp_path / "out", topic=CAM,
                                           max_frames=8, min_interval=0.5), None,
                            make_checkpoint(tmp_path))
    assert report["damage"] is not None
    assert report["span_s"] == pytest.approx(7.0)
    assert [f["position"] for f in report["frames"]] == list(range(8))
    assert [f["stamp_ns"] for f in report["frames"]] == [
        stamp(i)[0] * 10**9 + stamp(i)[1] for i in expected]


def test_frame_picker_takes_times_in_any_order():
    """Slots from the earliest to the latest time; min interval to the nearest kept frame."""
    s = 1_000_000_000

    def offer_all(picker: FramePicker, times: list[int]) -> list[int]:
        return [t for t in times if picker.wants(t)
                and picker.offer(t, np.full((2, 2), float(t % 251)))]

    assert offer_all(FramePicker(0, 7 * s, 8, s // 2, 0.0),
                     [4 * s, 5 * s, 6 * s, 7 * s, 0, s, 2 * s, 3 * s]) == [
        4 * s, 5 * s, 6 * s, 7 * s, 0, s, 2 * s, 3 * s]
    # slots of 2 s (the minimum interval); 9 s is 1 s from the kept 10 s, 2.5 s and 5 s
    # are 2.5 s from their nearest kept frames
    assert offer_all(FramePicker(0, 10 * s, 10, 2 * s, 0.0),
                     [0, 10 * s, 5 * s // 2, 9 * s, 5 * s]) == [0, 10 * s, 5 * s // 2, 5 * s]


def test_index_named_ground_truth_pairs_in_a_salvaged_loop_bag(tmp_path):
    """File i holds the labels the model gives the frame at intact position i: mIoU 1."""
    engine = shared_engine()
    intact = write_mcap(tmp_path / "loop.mcap", LOOP)
    ref = segment_bag(engine, SegmentOptions(intact, tmp_path / "ref", topic=CAM))
    labels = read_bag(Path(ref["output_bag"]))["/cam/segmentation/labels"]
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    by_frame = {frame_of(m): image_array(m) for _, m in labels}
    for i, frame in enumerate(rosbags_order(intact)):
        cv2.imwrite(str(gt_dir / f"{i:06d}.png"), by_frame[frame])
    report = segment_bag(engine, SegmentOptions(cut_in_summary(intact, tmp_path / "cut.mcap"),
                                                tmp_path / "out", topic=CAM, gt_dir=gt_dir))
    assert report["damage"] is not None
    assert report["ground_truth"]["frames_with_gt"] == len(LOOP)
    assert report["miou"] == pytest.approx(1.0) and report["global_acc"] == pytest.approx(1.0)

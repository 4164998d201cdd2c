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

"""Cut-off ROS 2 sqlite3 bags and ROS 1 bags without their index: what segment-bag salvages.

The expected frames come from the intact bag, not from the salvage code: for sqlite3 from
the page layout SQLite's ``dbstat`` table reports (a row is readable when every page it
needs lies wholly before the cut), for ROS 1 from rosbags' own index of the chunks.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag1 import Reader as Reader1
from rosbags.rosbag1 import Writer as Writer1
from test_bag_helpers import (
    NOETIC,
    camera_bag,
    frame,
    image_array,
    label_image,
    raw_image,
    read_bag,
    receive_ns,
    shared_engine,
    stamp,
)

from canet_ros.bag import SegmentOptions, segment_bag

CAM = "/cam/image_raw"
GT = "/cam/ground_truth"
LABELS = "/cam/segmentation/labels"


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def frame_index(msg) -> int:
    """Which frame(i) a message carries, from its header stamp."""
    ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    return next(i for i in range(64) if stamp(i) == (ns // 10**9, ns % 10**9))


def check_frames(engine, report: dict, expected: list[int]) -> None:
    """Check that the output holds exactly the expected frames, each segmented as before."""
    labels = read_bag(Path(report["output_bag"]))[LABELS]
    assert [frame_index(m) for _, m in labels] == expected
    for _, msg in labels:
        assert np.array_equal(image_array(msg), engine.infer(frame(frame_index(msg)),
                                                             "rgb").labels)
    assert report["frames"] == len(expected)


# -- sqlite3 -------------------------------------------------------------------------------
def row_pages(db: Path) -> tuple[dict[int, list[int]], int]:
    """Return the pages each row of ``messages`` needs, and the page size.

    A row needs its leaf, the leaf's ancestors and its overflow pages, as SQLite's dbstat
    table of the intact file lists them.
    """
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("SELECT path, pageno, pagetype, ncell FROM dbstat "
                        "WHERE name = 'messages' ORDER BY path").fetchall()
    con.close()
    by_path = {path: pageno for path, pageno, _, _ in pages}
    needs, rowid = {}, 0
    for path, pageno, kind, ncell in pages:
        if kind != "leaf":
            continue
        ancestors = [path[: i + 1] for i, ch in enumerate(path[:-1]) if ch == "/"]
        for cell in range(ncell):
            rowid += 1  # rowids 1..N in leaf order: the writer never deletes
            prefix = f"{path}{cell:03x}+"
            needs[rowid] = [pageno, *(by_path[a] for a in ancestors),
                            *(n for p, n in by_path.items() if p.startswith(prefix))]
    return needs, page


@pytest.mark.parametrize("with_gt", [True, False], ids=["images_and_labels", "images"])
def test_cut_sqlite3_bag(engine, tmp_path, with_gt):
    folder = camera_bag(tmp_path / "rec", n=8, fmt="sqlite3", kind="rgb8", topic=CAM,
                        gt_topic=GT if with_gt else None)
    db = folder / "rec.db3"
    data = db.read_bytes()
    needs, page = row_pages(db)
    image_rows = [2 * i + 1 if with_gt else i + 1 for i in range(8)]
    assert all(len(needs[r]) >= 3 for r in image_rows)  # images overflow their leaf
    if with_gt:
        cut = int(len(data) * 0.8)
    else:
        # Through an overflow page that comes after its row's leaf: SQLite reads the missing
        # half of such a page as zeros, with no error, unless the salvage leaves it out.
        row = next(r for r in image_rows[2:] if max(needs[r]) != needs[r][0])
        cut = (max(needs[row]) - 1) * page + page // 2
    assert cut % page  # the cut goes through a page
    rows = {r for r, p in needs.items() if max(p) <= cut // page}
    db.write_bytes(data[:cut])
    report = segment_bag(engine, SegmentOptions(folder, tmp_path / "out",
                                                gt_topic=GT if with_gt else None))
    expected = [i for i, r in enumerate(image_rows) if r in rows]
    assert 0 < len(expected) < 8
    check_frames(engine, report, expected)
    damage = report["damage"]
    assert damage["storage"] == "sqlite3" and "malformed" in damage["cause"]
    assert damage["messages_lost"] == len(needs) - len(rows)  # metadata.yaml's count - read
    assert any("left out" in note for note in damage["notes"])
    if with_gt:
        gt = report["ground_truth"]
        scored = [i for i in expected if 2 * i + 2 in rows]
        assert gt["frames_with_gt"] == len(scored)
        assert len(gt["frames_not_scored"]) == len(expected) - len(scored)


# -- ROS 1 ---------------------------------------------------------------------------------
def ros1_bag(path: Path, n: int = 8) -> Path:
    """Frames and labels in small bz2 chunks (about one frame each)."""
    writer = Writer1(path)
    writer.chunk_threshold = 8000
    writer.set_compression(Writer1.CompressionFormat.BZ2)
    with writer:
        cam = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=NOETIC)
        gt = writer.add_connection(GT, "sensor_msgs/msg/Image", typestore=NOETIC)
        for i in range(n):
            for conn, msg, at in ((cam, raw_image(NOETIC, i), receive_ns(i)),
                                  (gt, label_image(NOETIC, i), receive_ns(i, 7))):
                writer.write(conn, at, NOETIC.serialize_ros1(msg, msg.__msgtype__))
    return path


def chunk_layout(path: Path) -> tuple[list[tuple[int, int]], int]:
    """(chunk start, camera messages in it) from rosbags' index, and where the index starts."""
    with Reader1(path) as reader:
        cam = {c.id for c in reader.connections if c.topic == CAM}
        chunks = [(info.pos, sum(n for cid, n in info.connection_counts.items() if cid in cam))
                  for info in reader.chunk_infos]
    data = path.read_bytes()
    at = data.find(b"index_pos=") + len(b"index_pos=")  # a field of the bag header record
    return chunks, int.from_bytes(data[at: at + 8], "little")


def test_ros1_bag_never_closed(engine, tmp_path):
    bag = ros1_bag(tmp_path / "rec.bag")
    chunks, index_pos = chunk_layout(bag)
    assert len(chunks) >= 4
    data = bytearray(bag.read_bytes()[:index_pos])  # what a killed recorder leaves
    at = data.find(b"index_pos=") + len(b"index_pos=")
    data[at: at + 8] = bytes(8)
    bag.write_bytes(bytes(data))
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", gt_topic=GT))
    check_frames(engine, report, list(range(8)))
    assert "not indexed" in report["damage"]["cause"]
    assert report["damage"]["messages_lost"] == 0 and report["complete"]


def test_ros1_bag_cut_mid_chunk(engine, tmp_path):
    bag = ros1_bag(tmp_path / "rec.bag")
    chunks, _ = chunk_layout(bag)
    k = len(chunks) // 2
    data = bag.read_bytes()
    bag.write_bytes(data[: chunks[k][0] + 200])
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", gt_topic=GT))
    check_frames(engine, report, list(range(sum(n for _, n in chunks[:k]))))
    assert report["frames_lost"] is None  # the cut chunk's count went with the index


def test_ros1_damaged_chunk_behind_an_intact_index(engine, tmp_path):
    bag = ros1_bag(tmp_path / "rec.bag")
    chunks, _ = chunk_layout(bag)
    k = 2
    data = bytearray(bag.read_bytes())
    middle = (chunks[k][0] + chunks[k + 1][0]) // 2
    data[middle: middle + 32] = bytes(32)
    bag.write_bytes(bytes(data))
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", gt_topic=GT))
    before = sum(n for _, n in chunks[:k])
    lost = chunks[k][1]
    check_frames(engine, report, [i for i in range(8) if not before <= i < before + lost])
    # rosbags read the index, failed on the chunk; the index data after it gives the count
    assert report["frames_lost"] == lost and report["frames_in_topic"] == 8
    assert report["damage"]["cause"].startswith("reading failed after")

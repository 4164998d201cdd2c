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


"""What a bag run counts: duplicate ground-truth stamps, lost frames, and ``complete``.

Expected values come from outside the code under test: the ground-truth rule is the one
the module documents (the first message of a stamp is kept), the lost counts come from
rosbags' own index of the intact ROS 1 bag, and ``complete`` must be false whenever a
frame was lost or the loss cannot be told.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag1 import Reader as Reader1
from rosbags.rosbag1 import Writer as Writer1
from test_bag_helpers import (
    HUMBLE,
    NOETIC,
    Msg,
    header,
    label_image,
    labels_for,
    raw_image,
    receive_ns,
    shared_engine,
    stamp,
    write_bag,
)

from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.bag.groundtruth import TopicGroundTruth
from canet_ros.bag.reader import InputBag
from canet_ros.bag.report import RunStats, build_report

CAM = "/cam/image_raw"
GT = "/cam/ground_truth"


def stamp_ns(i: int) -> int:
    sec, nanosec = stamp(i)
    return sec * 1_000_000_000 + nanosec


def labels_message(store, i: int, value: int):
    """Return a mono8 label image of one class everywhere, carrying frame i's header stamp."""
    labels = np.full((6, 8), value, np.uint8)
    return store.types["sensor_msgs/msg/Image"](
        header=header(store, i), height=6, width=8, encoding="mono8", is_bigendian=0, step=8,
        data=labels.reshape(-1))


def test_duplicate_ground_truth_stamp_keeps_the_first(tmp_path):
    # Two label images of frame 1's stamp, received in this order: 3 first, then 5.
    bag = write_bag(tmp_path / "gt", [
        Msg(GT, receive_ns(0), labels_message(HUMBLE, 0, 1)),
        Msg(GT, receive_ns(1), labels_message(HUMBLE, 1, 3)),
        Msg(GT, receive_ns(1, 50), labels_message(HUMBLE, 1, 5)),
    ])
    with InputBag(bag) as source:
        gt = TopicGroundTruth(source, GT)
        gt.prepare()
        assert np.unique(gt.lookup(None, stamp_ns(1))).tolist() == [3]
        assert np.unique(gt.lookup(None, stamp_ns(0))).tolist() == [1]
    assert gt.total() == 2
    assert gt.problems == {"duplicate header stamp (first one kept)": 1}


def report_for(frames_lost: object, frames: int = 4, total: int = 4) -> dict:
    stats = RunStats(frames_total=total, frames=frames, wall_s=1.0)
    job = {"ground_truth": None} if frames_lost == "absent" else {
        "ground_truth": None, "frames_lost": frames_lost}
    return build_report(stats, job, {}, ["road"], None)


def test_complete_is_false_whenever_frames_were_or_may_have_been_lost():
    # Every frame that was read was written; only the loss decides.
    assert report_for("absent")["complete"] is True  # an intact bag reports no loss
    assert report_for(0)["complete"] is True
    assert report_for(2)["complete"] is False
    assert report_for(None)["complete"] is False  # the loss is unknown
    assert report_for(0, frames=3)["complete"] is False  # a frame read but not written


# -- ROS 1 salvage ---------------------------------------------------------------------------
def ros1_bag(path: Path, n: int = 9) -> Path:
    """Frames and labels in bz2 chunks of about three frames each."""
    writer = Writer1(path)
    writer.chunk_threshold = 30_000  # a 64x48 rgb8 frame and its labels are ~12 kB
    writer.set_compression(Writer1.CompressionFormat.BZ2)
    with writer:
        cam = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=NOETIC)
        gt = writer.add_connection(GT, "sensor_msgs/msg/Image", typestore=NOETIC)
        for i in range(n):
            for conn, msg, at in ((cam, raw_image(NOETIC, i), receive_ns(i)),
                                  (gt, label_image(NOETIC, i), receive_ns(i, 7))):
                writer.write(conn, at, NOETIC.serialize_ros1(msg, msg.__msgtype__))
    return path


def chunk_counts(path: Path) -> list[tuple[int, int, int]]:
    """(chunk start, camera messages, label messages) per chunk, from rosbags' index."""
    with Reader1(path) as reader:
        ids = {c.topic: c.id for c in reader.connections}
        return [(info.pos, info.connection_counts.get(ids[CAM], 0),
                 info.connection_counts.get(ids[GT], 0)) for info in reader.chunk_infos]


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def test_ros1_damaged_chunk_lost_counts_and_complete(engine, tmp_path):
    bag = ros1_bag(tmp_path / "rec.bag")
    chunks = chunk_counts(bag)
    # The damaged chunk holds several messages of each topic, so its index data has
    # several entries per connection: every one of them is a lost message.
    k = next(i for i, (_, cams, gts) in enumerate(chunks[:-1]) if cams >= 2 and gts >= 2)
    data = bytearray(bag.read_bytes())
    middle = (chunks[k][0] + chunks[k + 1][0]) // 2
    data[middle: middle + 32] = bytes(32)
    bag.write_bytes(bytes(data))
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", gt_topic=GT))
    lost_cam, lost_gt = chunks[k][1], chunks[k][2]
    assert report["frames_lost"] == lost_cam
    assert report["damage"]["topic_messages_lost"] == {CAM: lost_cam, GT: lost_gt}
    assert report["frames"] == 9 - lost_cam and report["frames_in_topic"] == 9
    assert report["complete"] is False


def test_ros1_bag_cut_mid_chunk_is_not_complete(engine, tmp_path):
    bag = ros1_bag(tmp_path / "rec.bag")
    chunks = chunk_counts(bag)
    k = len(chunks) // 2
    bag.write_bytes(bag.read_bytes()[: chunks[k][0] + 200])
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", topic=CAM))
    assert report["frames"] == sum(cams for _, cams, _ in chunks[:k])
    assert report["frames_lost"] is None  # the cut chunk's count went with the index
    assert report["complete"] is False


def zero_stamped(msg):
    msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0  # a driver that leaves it unset
    return msg


def test_zero_header_stamps_match_extract_frames_names(engine, tmp_path):
    """extract-frames names such frames by receive time; --gt-dir must find them so."""
    import cv2

    from canet_ros.bag.extract import stamp_stem

    msgs = [Msg(CAM, receive_ns(i), zero_stamped(raw_image(HUMBLE, i))) for i in range(3)]
    bag = write_bag(tmp_path / "in", msgs)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for i in (0, 2):
        sec, nsec = divmod(receive_ns(i), 1_000_000_000)  # the name, worked out by hand
        assert stamp_stem(msgs[i].msg.header, receive_ns(i))[0] == f"{sec}_{nsec:09d}"
        cv2.imwrite(str(gt_dir / f"{sec}_{nsec:09d}.png"), labels_for(i))
    gt = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", gt_dir=gt_dir))["ground_truth"]
    assert (gt["frames_with_gt"], gt["frames_without_gt"], gt["unused"]) == (2, 1, 0)
    assert [f["stamp_ns"] for f in gt["frames_not_scored"]] == [receive_ns(1)]


def test_unreadable_ground_truth_on_a_topic_makes_its_frame_unusable(engine, tmp_path):
    gt_msgs = [label_image(HUMBLE, i) for i in range(3)]
    gt_msgs[0] = raw_image(HUMBLE, 0)  # colour where label ids belong
    bag = write_bag(tmp_path / "in", [Msg(CAM, receive_ns(i), raw_image(HUMBLE, i))
                                      for i in range(3)]
                    + [Msg(GT, receive_ns(i, 7), m) for i, m in enumerate(gt_msgs)])
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", topic=CAM,
                                                gt_topic=GT))
    gt = report["ground_truth"]
    assert (gt["frames_with_gt"], gt["frames_without_gt"]) == (2, 0)
    assert list(gt["frames_gt_unusable"].values()) == [1]
    assert "single-channel" in gt["frames_not_scored"][0]["reason"]
    assert [f["position"] for f in gt["frames_not_scored"]] == [0]
    assert (gt["available"], gt["unused"]) == (2, 0)


def test_an_interrupted_run_counts_ground_truth_only_for_written_frames(
        engine, tmp_path, monkeypatch):
    bag = write_bag(tmp_path / "in", [Msg(CAM, receive_ns(i), raw_image(HUMBLE, i))
                                      for i in range(8)]
                    + [Msg(GT, receive_ns(7, 7), label_image(HUMBLE, 7))])
    real, calls = engine.infer, []

    def infer(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C during the third frame
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "infer", infer)
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", topic=CAM,
                                                gt_topic=GT))
    assert report["interrupted"] and report["frames"] == 2
    gt = report["ground_truth"]
    assert gt["frames_with_gt"] + gt["frames_without_gt"] == 2
    assert [f["position"] for f in gt["frames_not_scored"]] == [0, 1]

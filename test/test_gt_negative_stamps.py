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

"""Ground-truth files named after a stamp with negative seconds pair with their frames.

builtin_interfaces/Time.sec is an int32 "valid over all int32 values", and a ROS 1 stamp
past January 2038 (a uint32 on the wire) reads into it as negative: 2200000000 s (2039)
becomes 2200000000 - 2**32 = -2094967296. extract-frames names such a frame by its stamp,
``-2094967296_100000000``; segment-bag --gt-dir must read that name back (docs/own_data.md:
"the same naming segment-bag --gt-dir reads").
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_bag_helpers import (
    NOETIC,
    Msg,
    labels_for,
    make_checkpoint,
    raw_image,
    shared_engine,
    write_bag,
)

from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.bag.extract import ExtractOptions, extract_frames, stamp_stem
from canet_ros.bag.groundtruth import DirGroundTruth
from canet_ros.bag.reader import frame_stamp

CAM = "/cam/image_raw"
WIRE_SEC = 2_200_000_000  # 2039-09-18, as a ROS 1 recorder writes it (uint32)
READ_SEC = WIRE_SEC - 2**32  # what rosbags' int32 field holds: -2094967296


def ros1_header(nanosec: int):
    """Make a Noetic header whose stamp has WIRE_SEC's 32 bits (rosbags' int32 holds READ_SEC)."""
    t = NOETIC.types["builtin_interfaces/msg/Time"](sec=READ_SEC, nanosec=nanosec)
    return NOETIC.types["std_msgs/msg/Header"](seq=0, stamp=t, frame_id="cam")


def test_signed_names_match_the_stamps_they_spell(tmp_path):
    """Both name forms, worked out by hand: -2094967296 s + 0.1 s, and 0.2 s later in ns."""
    for name in ("-2094967296_100000000", "-2094967295700000000", "000003"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), labels_for(0))
    gt = DirGroundTruth(tmp_path)
    assert gt.problems == {}
    assert gt.total() == 3
    assert READ_SEC == -2_094_967_296
    pair = -2_094_967_296 * 10**9 + 100_000_000
    assert np.array_equal(gt.lookup(None, pair), labels_for(0))
    assert np.array_equal(gt.lookup(None, pair + 200_000_000), labels_for(0))
    assert gt.lookup(None, pair + 1) is None


def test_extract_frames_names_are_what_gt_dir_reads(tmp_path):
    header = ros1_header(100_000_000)
    stem, stamp = stamp_stem(header, 5)
    assert stem == "-2094967296_100000000"
    cv2.imwrite(str(tmp_path / f"{stem}.png"), labels_for(1))
    gt = DirGroundTruth(tmp_path)
    assert np.array_equal(gt.lookup(None, frame_stamp(header, 5)), labels_for(1))


def test_a_2039_ros1_bag_scores_with_the_names_extract_frames_gave(tmp_path):
    """extract-frames names the frames, a labeller returns masks by those names: all scored."""
    msgs = []
    for i in range(3):
        msg = raw_image(NOETIC, i)
        msg.header = ros1_header(i * 100_000_000)
        msgs.append(Msg(CAM, WIRE_SEC * 10**9 + i * 100_000_000 + 5_000_000, msg))
    bag = write_bag(tmp_path / "y2039.bag", msgs, "ros1")
    report = extract_frames(ExtractOptions(source=bag, outdir=tmp_path / "frames",
                                           topic=CAM, min_interval=0), None,
                            make_checkpoint(tmp_path))
    stems = [f["stem"] for f in report["frames"]]
    assert stems == [f"{READ_SEC}_{i * 100_000_000:09d}" for i in range(3)]
    gt_dir = tmp_path / "masks"
    gt_dir.mkdir()
    for i, stem in enumerate(stems):
        cv2.imwrite(str(gt_dir / f"{stem}.png"), labels_for(i))
    out = segment_bag(shared_engine(), SegmentOptions(bag, tmp_path / "out", topic=CAM,
                                                      gt_dir=gt_dir))
    gt = out["ground_truth"]
    assert (gt["frames_with_gt"], gt["frames_without_gt"], gt["unused"]) == (3, 0, 0)
    assert out["miou"] is not None


@pytest.mark.parametrize("name", ["-12", "-000042", "12_-5", "--1_000000000"])
def test_a_sign_does_not_make_an_index_or_a_stamp_of_a_short_or_odd_name(tmp_path, name):
    """A negative frame index means nothing; a short signed number is no stamp either."""
    cv2.imwrite(str(tmp_path / f"{name}.png"), labels_for(0))
    cv2.imwrite(str(tmp_path / "000000.png"), labels_for(0))
    gt = DirGroundTruth(tmp_path)
    assert gt.total() == 1 and sum(gt.problems.values()) == 1

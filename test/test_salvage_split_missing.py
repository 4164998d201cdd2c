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

"""A split ROS 2 bag with a storage file that metadata.yaml lists but the disk lacks.

The missing file's messages are lost (docs/segment_bag.md, Damaged bags): the report says
so and the files after it keep their positions, so index-named ground truth still pairs
with the right frames. Frame ``i`` of these bags sits at position ``i`` on its topic.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml
from test_bag_helpers import (
    HUMBLE,
    Msg,
    label_image,
    labels_for,
    raw_image,
    receive_ns,
    shared_engine,
    stamp,
    write_bag,
)

from canet_ros.bag import InputBag, SegmentOptions, segment_bag
from canet_ros.bag.extract import ExtractOptions, extract_frames

CAM = "/cam/image_raw"
GT = "/cam/ground_truth"
SIZES = (3, 4, 3)  # frames per storage file: 0-2, 3-6, 7-9
SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def _merge_metadata(parts: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """metadata.yaml of the whole split bag, as rosbag2 writes it after the last split."""
    info = dict(parts[0])
    info["relative_file_paths"] = list(names)
    info["files"] = [dict(p["files"][0], path=n) for p, n in zip(parts, names, strict=True)]
    info["message_count"] = sum(p["message_count"] for p in parts)
    totals: dict[str, int] = {}
    for part in parts:
        for item in part["topics_with_message_count"]:
            name = item["topic_metadata"]["name"]
            totals[name] = totals.get(name, 0) + item["message_count"]
    info["topics_with_message_count"] = [
        dict(item, message_count=totals[item["topic_metadata"]["name"]])
        for item in parts[0]["topics_with_message_count"]]
    return {"rosbag2_bagfile_information": info}


def split_bag(folder: Path, fmt: str = "mcap", sizes: Sequence[int] = SIZES) -> Path:
    """Frames 0..sum(sizes)-1 with label images on GT, one storage file per size."""
    folder.mkdir()
    parts, names, first = [], [], 0
    for k, size in enumerate(sizes):
        part = folder.parent / f"{folder.name}_part{k}"
        msgs = []
        for i in range(first, first + size):
            msgs += [Msg(CAM, receive_ns(i), raw_image(HUMBLE, i)),
                     Msg(GT, receive_ns(i, 7), label_image(HUMBLE, i))]
        write_bag(part, msgs, fmt)
        names.append(f"{folder.name}_{k}{SUFFIX[fmt]}")
        shutil.copy(part / f"{part.name}{SUFFIX[fmt]}", folder / names[-1])
        meta = yaml.safe_load((part / "metadata.yaml").read_text())
        parts.append(meta["rosbag2_bagfile_information"])
        shutil.rmtree(part)
        first += size
    (folder / "metadata.yaml").write_text(yaml.safe_dump(_merge_metadata(parts, names)))
    return folder


def drop(bag: Path, k: int, fmt: str = "mcap") -> None:
    (bag / f"{bag.name}_{k}{SUFFIX[fmt]}").unlink()


def frame_of(bag: InputBag, raw: bytes) -> int:
    """Which frame(i) a raw message carries, from its header stamp."""
    head = bag.deserialize(raw, "sensor_msgs/msg/Image").header
    return next(i for i in range(sum(SIZES)) if stamp(i) == (head.stamp.sec,
                                                             head.stamp.nanosec))


def read_positions(path: Path) -> tuple[InputBag, list[tuple[int, int | None]]]:
    """(frame, position) of each message read on CAM; the bag comes back closed."""
    with InputBag(path) as bag:
        return bag, [(frame_of(bag, m.raw), m.position) for m in bag.messages(CAM)]


def first_of(k: int) -> int:
    return sum(SIZES[:k])


def test_all_files_present_read_as_before(tmp_path):
    for fmt in SUFFIX:
        bag, read = read_positions(split_bag(tmp_path / f"whole_{fmt}", fmt))
        assert bag.damage is None
        assert read == [(i, i) for i in range(10)]


@pytest.mark.parametrize("fmt", list(SUFFIX))
@pytest.mark.parametrize("k", [0, 1, 2])  # the first, a middle and the last file missing
def test_missing_file_is_lost_and_later_files_keep_their_positions(tmp_path, fmt, k):
    bag_dir = split_bag(tmp_path / "rec", fmt)
    drop(bag_dir, k, fmt)
    with InputBag(bag_dir) as bag:
        read = [(frame_of(bag, m.raw), m.position) for m in bag.messages(CAM)]
        in_topic = bag.topics()[CAM].count
    gone = range(first_of(k), first_of(k + 1))
    assert read == [(i, i) for i in range(10) if i not in gone]
    assert in_topic == 10
    damage = bag.damage
    assert damage is not None and damage.lost_on(CAM) == SIZES[k]
    (region,) = [r for r in damage.regions if "missing" in r.reason]
    assert f"rec_{k}{SUFFIX[fmt]}" in region.reason
    assert region.messages == 2 * SIZES[k] and region.topics == {CAM: SIZES[k],
                                                                 GT: SIZES[k]}
    assert region.start_ns == receive_ns(first_of(k))


def middle_file_lost_uncounted(folder: Path) -> Path:
    """Return a split bag missing its middle file, whose count metadata.yaml lacks."""
    bag_dir = split_bag(folder)
    meta = yaml.safe_load((bag_dir / "metadata.yaml").read_text())
    del meta["rosbag2_bagfile_information"]["files"][1]["message_count"]
    (bag_dir / "metadata.yaml").write_text(yaml.safe_dump(meta))
    drop(bag_dir, 1)
    return bag_dir


def test_unknown_count_leaves_later_positions_unknown(tmp_path):
    """Without the file's message count, positions after the gap are None, not guessed."""
    bag_dir = middle_file_lost_uncounted(tmp_path / "rec")
    bag, read = read_positions(bag_dir)
    assert read == [(0, 0), (1, 1), (2, 2), (7, None), (8, None), (9, None)]
    assert bag.damage is not None and bag.damage.lost_on(CAM) is None
    assert bag.damage.messages_lost() is None


def test_two_missing_files_leave_per_topic_loss_unknown(tmp_path):
    bag_dir = split_bag(tmp_path / "rec", sizes=(2, 2, 2, 4))
    drop(bag_dir, 1)
    drop(bag_dir, 2)
    bag, read = read_positions(bag_dir)
    assert read == [(0, 0), (1, 1), (6, None), (7, None), (8, None), (9, None)]
    assert bag.damage is not None and bag.damage.lost_on(CAM) is None
    assert bag.damage.messages_lost() == 8  # both files' counts are in metadata.yaml


def _index_gt(folder: Path) -> Path:
    folder.mkdir()
    for i in range(10):
        cv2.imwrite(str(folder / f"{i:06d}.png"), labels_for(i))
    return folder


def test_segment_bag_reports_the_loss_and_pairs_index_named_gt(engine, tmp_path):
    bag_dir = split_bag(tmp_path / "rec")
    drop(bag_dir, 0)  # frames 0-2 gone: 000003.png must go to frame 3, the first read
    gt_dir = _index_gt(tmp_path / "gt")
    by_index = segment_bag(engine, SegmentOptions(bag_dir, tmp_path / "a", topic=CAM,
                                                  gt_dir=gt_dir))
    by_stamp = segment_bag(engine, SegmentOptions(bag_dir, tmp_path / "b", topic=CAM,
                                                  gt_topic=GT))
    assert by_index["frames"] == 7 and by_index["frames_in_topic"] == 10
    assert by_index["frames_lost"] == 3 and by_index["complete"] is False
    assert by_index["damage"]["topic_messages_lost"][CAM] == 3
    assert by_index["ground_truth"]["frames_with_gt"] == 7
    assert by_index["ground_truth"]["unused"] == 3  # 000000-000002.png: frames lost
    assert by_index["confusion_matrix"] == by_stamp["confusion_matrix"]


def test_unknown_positions_are_not_scored_by_index(engine, tmp_path):
    bag_dir = middle_file_lost_uncounted(tmp_path / "rec")
    report = segment_bag(engine, SegmentOptions(bag_dir, tmp_path / "a", topic=CAM,
                                                gt_dir=_index_gt(tmp_path / "gt")))
    assert report["frames_lost"] is None and report["complete"] is False
    assert report["ground_truth"]["frames_with_gt"] == 3  # frames 0-2, before the gap
    assert [f["position"] for f in report["ground_truth"]["frames_not_scored"]] == [
        None, None, None]


def extract_all(engine, bag_dir: Path, out: Path) -> dict:
    return extract_frames(ExtractOptions(bag_dir, out, topic=CAM, min_interval=0.0,
                                         duplicate_threshold=0.0), lambda: engine)


def test_extract_frames_writes_intact_bag_positions(engine, tmp_path):
    bag_dir = split_bag(tmp_path / "rec")
    drop(bag_dir, 1)
    report = extract_all(engine, bag_dir, tmp_path / "out")
    assert [f["position"] for f in report["frames"]] == [0, 1, 2, 7, 8, 9]
    assert report["damage"]["topic_messages_lost"][CAM] == 4


def test_extract_frames_leaves_unknown_positions_null(engine, tmp_path):
    """extract.json's position is the intact bag's; unknown after a loss of unknown size."""
    bag_dir = middle_file_lost_uncounted(tmp_path / "rec")
    report = extract_all(engine, bag_dir, tmp_path / "out")
    assert [f["position"] for f in report["frames"]] == [0, 1, 2, None, None, None]

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

"""Segment real bags: ROS 2 sqlite3 / MCAP (folders, bare files), ROS 1; raw and compressed.

The output bag is read back with rosbags and compared to the input.
"""
from __future__ import annotations

import ast
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import (
    camera_bag,
    frame,
    image_array,
    read_bag,
    receive_ns,
    shared_engine,
    stamp,
)

from canet_ros.bag import SegmentOptions, camera_namespace, segment_bag

CAM = "/cam_front/image_raw/compressed"
OUT_TOPICS = ("/cam_front/segmentation/labels", "/cam_front/segmentation/color",
              "/cam_front/segmentation/overlay")


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def check_output(report: dict, n: int, input_topic: str, overlay_encoding: str,
                 copied: bool = False) -> dict:
    """Topics, counts, headers and receive times of the output equal the input's."""
    out = read_bag(Path(report["output_bag"]))
    expected = {*OUT_TOPICS, "/cam_front/segmentation/label_info"} | (
        {input_topic} if copied else set())
    assert set(out) == expected
    for topic in OUT_TOPICS:
        msgs = out[topic]
        assert len(msgs) == n
        for i, (ts, msg) in enumerate(msgs):
            assert ts == receive_ns(i)
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp(i)
            assert msg.header.frame_id == "cam"
            assert (msg.width, msg.height) == (64, 48)
    assert {m.encoding for _, m in out[OUT_TOPICS[0]]} == {"mono8"}
    assert {m.encoding for _, m in out[OUT_TOPICS[1]]} == {"rgb8"}
    assert {m.encoding for _, m in out[OUT_TOPICS[2]]} == {overlay_encoding}
    assert report["frames"] == n and report["complete"] and not report["interrupted"]
    return out


@pytest.mark.parametrize("fmt", ["mcap", "sqlite3", "ros1"])
def test_compressed_input_every_storage(engine, tmp_path, fmt):
    src = camera_bag(tmp_path / ("in.bag" if fmt == "ros1" else "in"), n=3, fmt=fmt, topic=CAM)
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", copy_input=True))
    out = check_output(report, 3, CAM, "bgr8", copied=True)
    # The copied input decodes to the same picture (ROS 1 headers lose only their seq).
    for i, (ts, msg) in enumerate(out[CAM]):
        assert ts == receive_ns(i) and msg.format.endswith("jpeg compressed bgr8")
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp(i)
    assert report["input_storage"] == ("ros1" if fmt == "ros1" else fmt)


@pytest.mark.parametrize("encoding,pad,fmt", [("rgb8", 0, "mcap"), ("bgr8", 5, "sqlite3"),
                                              ("bgr8", 3, "ros1")])
def test_raw_input_overlay_keeps_channel_order(engine, tmp_path, encoding, pad, fmt):
    src = camera_bag(tmp_path / ("in.bag" if fmt == "ros1" else "in"), n=2, kind=encoding,
                     topic="/cam_front/image_raw", pad=pad, fmt=fmt)
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", storage="sqlite3"))
    out = check_output(report, 2, "/cam_front/image_raw", encoding)
    assert (Path(report["output_bag"]) / "in_segmented.db3").is_file()
    for i, (_, msg) in enumerate(out[OUT_TOPICS[2]]):
        overlay = image_array(msg).astype(np.int32)
        color = image_array(out[OUT_TOPICS[1]][i][1]).astype(np.int32)
        picture = frame(i).astype(np.int32)
        if encoding == "bgr8":
            picture = picture[:, :, ::-1]
            color = color[:, :, ::-1]
        # overlay = blend of frame and colour mask, in the frame's own channel order
        alpha = engine.overlay_alpha
        assert np.abs(overlay - ((1 - alpha) * picture + alpha * color)).max() <= 2


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_bare_storage_file(engine, tmp_path, suffix):
    fmt = "mcap" if suffix == ".mcap" else "sqlite3"
    folder = camera_bag(tmp_path / "rec", n=2, fmt=fmt, topic=CAM)
    bare = folder / f"rec{suffix}"
    report = segment_bag(engine, SegmentOptions(bare, tmp_path / "out"))
    check_output(report, 2, CAM, "bgr8")
    assert Path(report["output_bag"]).name == "rec_segmented"


@pytest.mark.parametrize("kind", ["rgb8", "compressed"])
def test_labels_in_bag_are_the_engines(engine, tmp_path, kind):
    """Labels, colours and overlays in the bag, against the engine on frames decoded here.

    The test model's labels vary across the frame (test_bag_helpers.make_checkpoint), so a
    frame decoded wrongly, in the wrong channel order or paired with another message's
    outputs gives other labels.
    """
    src = camera_bag(tmp_path / "in", n=3, kind=kind, topic="/cam_front/image_raw")
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out"))
    out = read_bag(Path(report["output_bag"]))
    inputs = read_bag(src)["/cam_front/image_raw"]
    palette = np.asarray(engine.class_set.palette(), np.uint8).reshape(-1, 3)
    for i, (_, msg) in enumerate(out[OUT_TOPICS[0]]):
        if kind == "compressed":  # decoded here with OpenCV, in its own BGR order
            bgr = cv2.imdecode(np.asarray(inputs[i][1].data, np.uint8), cv2.IMREAD_COLOR)
            picture, expected = bgr[:, :, ::-1], engine.infer(bgr, "bgr").labels
        else:
            picture, expected = frame(i), engine.infer(frame(i), "rgb").labels
        labels = image_array(msg)
        assert len(np.unique(labels)) >= 3  # a constant answer could not tell frames apart
        assert np.array_equal(labels, expected)
        color = image_array(out[OUT_TOPICS[1]][i][1])
        assert np.array_equal(color, palette[labels])
        overlay = image_array(out[OUT_TOPICS[2]][i][1]).astype(np.int32)
        if kind == "compressed":
            overlay = overlay[:, :, ::-1]  # bgr8, like the input
        alpha = engine.overlay_alpha
        blend = (1 - alpha) * picture.astype(np.int32) + alpha * color.astype(np.int32)
        assert np.abs(overlay - blend).max() <= 1
    per_frame = [image_array(m) for _, m in out[OUT_TOPICS[0]]]
    assert not np.array_equal(per_frame[0], per_frame[1])  # frames differ, so do labels


@pytest.mark.parametrize("topic,camera", [
    ("/cam_front/image_raw/compressed", "/cam_front"), ("/cam_front/image_raw", "/cam_front"),
    ("/a/b/image/compressed", "/a/b"), ("/image", ""), ("/image_raw/compressed", "")])
def test_camera_namespace(topic, camera):
    assert camera_namespace(topic) == camera


def test_bag_package_imports_no_ros():
    root = Path(__file__).resolve().parents[1] / "canet_ros" / "bag"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("rclpy", "sensor_msgs"), (path, name)

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

"""segment-bag's output bag says what each label id means, as the node does.

A vision_msgs/LabelInfo message beside the label images (read back with rosbags'
AnyReader, from the definition the bag itself carries) and, in MCAP, a metadata record
with the names and colours (read back with the mcap library).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_bag_helpers import HUMBLE, make_checkpoint, read_bag, run_cli

from canet_ros.bag.writer import OutputBag, OutputTopics
from canet_ros.classes import CAMVID, ClassSet

LANES = ClassSet("lanes", ("road", "lane_marking", "vehicle", "person", "background"),
                 ((128, 64, 128), (255, 255, 255), (0, 0, 142), (220, 20, 60), (0, 0, 0)),
                 ignore_index=255)
TOPIC = "/cam_front/image_raw"
LABEL_INFO = "/cam_front/segmentation/label_info"


def mcap_metadata(bag_dir):
    from mcap.reader import make_reader

    path, = bag_dir.glob("*.mcap")
    with path.open("rb") as stream:
        return {record.name: record.metadata for record in make_reader(stream).iter_metadata()}


def header(sec):
    return HUMBLE.types["std_msgs/msg/Header"](
        stamp=HUMBLE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=0), frame_id="cam")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_label_info_and_metadata_record(tmp_path, storage):
    out = OutputBag(tmp_path / "out", storage, OutputTopics.for_input(TOPIC))
    out.describe_classes(LANES)
    out.create()
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4) % 5
    color = np.zeros((3, 4, 3), np.uint8)
    for i in range(3):
        out.write_frame((10 + i) * 10**9, header(10 + i), labels, color, color, "bgr")
    out.close()
    messages = read_bag(tmp_path / "out")
    (timestamp, info), = messages[LABEL_INFO]  # once, at the first frame's time
    assert timestamp == 10 * 10**9 and info.header.stamp.sec == 10
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(enumerate(LANES.names))
    assert info.threshold == 0.0
    assert len(messages["/cam_front/segmentation/labels"]) == 3
    if storage == "mcap":
        record = mcap_metadata(tmp_path / "out")["canet_ros.classes"]
        assert json.loads(record["class_names"]) == list(LANES.names)
        assert json.loads(record["palette_rgb"]) == [list(c) for c in LANES.colors]
        assert record["ignore_index"] == "255"


def test_segment_bag_output_carries_the_models_classes(tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run_cli(["sample", "--out", str(out), "--checkpoint",
                          str(make_checkpoint(tmp_path)), "--resolution", "96x72"], capsys)
    assert rc == 0, err
    bag, = [p for p in out.iterdir() if p.is_dir()]
    messages = read_bag(bag)
    info_topic, = [t for t in messages if t.endswith("/segmentation/label_info")]
    labels_topic = info_topic.replace("label_info", "labels")
    assert len(messages[labels_topic]) == 8
    (_, info), = messages[info_topic]
    assert [c.class_name for c in info.class_map] == list(CAMVID.names)
    assert json.loads(mcap_metadata(bag)["canet_ros.classes"]["class_names"]) == \
        list(CAMVID.names)

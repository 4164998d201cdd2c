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

"""segment-bag records the QoS the node offers, so ``ros2 bag play`` re-offers label_info latched.

The expected profiles come from the node's own rclpy QoSProfile objects, their enums in
rmw's numbering; the form is what rosbag2 reads for a version-5 metadata file (humble
branch, rosbag2_transport qos.cpp: every key read, integers, durations as sec/nsec; jazzy
branch, rosbag2_storage qos.cpp: an integer ``history`` from 0 to UNKNOWN selects that
integer form). The replay test plays the label_info message from the bag with the recorded
profile, as rosbag2's player builds it, and subscribes late as docs/ros.md says.
"""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import yaml
from test_bag_helpers import HUMBLE

from canet_ros.bag.writer import OutputBag, OutputTopics
from canet_ros.classes import ClassSet

CLASSES = ClassSet("lanes", ("road", "lane_marking", "background"),
                   ((128, 64, 128), (255, 255, 255), (0, 0, 0)), ignore_index=255)
CAMERA = "/cam_front/image_raw"
LABEL_INFO = "/cam_front/segmentation/label_info"
IMAGES = tuple(f"/cam_front/segmentation/{n}" for n in ("labels", "color", "overlay"))
# Humble's encoder order (rosbag2_transport qos.cpp, humble branch); its decoder reads each.
HUMBLE_KEYS = ["history", "depth", "reliability", "durability", "deadline", "lifespan",
               "liveliness", "liveliness_lease_duration", "avoid_ros_namespace_conventions"]
DURATIONS = ("deadline", "lifespan", "liveliness_lease_duration")


def header(sec: int):
    return HUMBLE.types["std_msgs/msg/Header"](
        stamp=HUMBLE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=0), frame_id="cam")


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def bag(request, tmp_path_factory):
    """Write an output bag as segment-bag does: outputs, label_info and the input copy."""
    path = tmp_path_factory.mktemp(request.param) / "out"
    out = OutputBag(path, request.param, OutputTopics.for_input(CAMERA),
                    copy_topic=(CAMERA, "sensor_msgs/msg/Image"))
    out.describe_classes(CLASSES)
    out.create()
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4) % 3
    color = np.zeros((3, 4, 3), np.uint8)
    for i in range(2):
        out.write_frame((10 + i) * 10**9, header(10 + i), labels, color, color, "bgr")
        frame = HUMBLE.types["sensor_msgs/msg/Image"](
            header=header(10 + i), height=3, width=4, encoding="bgr8", is_bigendian=0,
            step=12, data=np.zeros(36, np.uint8))
        out.write_input((10 + i) * 10**9, HUMBLE.serialize_cdr(frame, frame.__msgtype__), None)
    out.close()
    return path


def metadata_qos(path) -> dict[str, str]:
    """Map topic -> offered_qos_profiles string in metadata.yaml (what ros2 bag play reads)."""
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
            for t in info["topics_with_message_count"]}


def storage_qos(path) -> dict[str, str]:
    """Map topic -> the string the storage file itself carries (MCAP channel, sqlite3 table)."""
    storage, = [p for p in path.iterdir() if p.suffix in (".mcap", ".db3")]
    if storage.suffix == ".mcap":
        from mcap.reader import make_reader
        with storage.open("rb") as fh:
            channels = make_reader(fh).get_summary().channels.values()
            return {c.topic: c.metadata["offered_qos_profiles"] for c in channels}
    with sqlite3.connect(storage) as db:
        return dict(db.execute("SELECT name, offered_qos_profiles FROM topics"))


def as_rmw(profile) -> dict:
    """Serialise an rclpy QoSProfile as rosbag2 does, numbers from rclpy's rmw-valued enums."""
    def duration(d):
        return {"sec": d.nanoseconds // 10**9, "nsec": d.nanoseconds % 10**9}
    return {"history": profile.history.value, "depth": profile.depth,
            "reliability": profile.reliability.value, "durability": profile.durability.value,
            "deadline": duration(profile.deadline), "lifespan": duration(profile.lifespan),
            "liveliness": profile.liveliness.value,
            "liveliness_lease_duration": duration(profile.liveliness_lease_duration),
            "avoid_ros_namespace_conventions": profile.avoid_ros_namespace_conventions}


def node_offers() -> dict[str, list]:
    """Map topic -> the profile list the node offers there, from the node's own modules."""
    pytest.importorskip("rclpy", reason="rclpy is not installed (tools/bootstrap.sh)")
    from canet_ros.ros.label_info import LABEL_INFO_QOS
    from canet_ros.ros.segmentation import OUTPUT_QOS
    return {LABEL_INFO: [as_rmw(LABEL_INFO_QOS)], **{t: [as_rmw(OUTPUT_QOS)] for t in IMAGES}}


def test_metadata_and_storage_record_the_nodes_offers(bag):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy
    expected = node_offers()
    recorded = metadata_qos(bag)
    assert set(recorded) == {*IMAGES, LABEL_INFO, CAMERA}
    for source in (recorded, storage_qos(bag)):
        for topic, profiles in expected.items():
            assert yaml.safe_load(source[topic]) == profiles, topic
        # The copied input keeps the player's default offer (reliable, volatile).
        assert source[CAMERA] == ""
    latched, = yaml.safe_load(recorded[LABEL_INFO])
    assert latched["durability"] == DurabilityPolicy.TRANSIENT_LOCAL.value
    assert latched["reliability"] == ReliabilityPolicy.RELIABLE.value
    assert (latched["history"], latched["depth"]) == (HistoryPolicy.KEEP_LAST.value, 1)
    # Jazzy reads a version-5 string as integers only when history is within rmw's range.
    assert HistoryPolicy.SYSTEM_DEFAULT.value <= latched["history"] <= \
        HistoryPolicy.UNKNOWN.value


def test_profile_has_every_key_humble_reads_in_its_types(bag):
    for source in (metadata_qos(bag), storage_qos(bag)):
        for topic in (LABEL_INFO, *IMAGES):
            profile, = yaml.safe_load(source[topic])
            assert sorted(profile) == sorted(HUMBLE_KEYS), topic
            assert isinstance(profile["avoid_ros_namespace_conventions"], bool)
            assert all(type(profile[k]) is int for k in HUMBLE_KEYS[:4] + ["liveliness"])
            assert all(sorted(profile[k]) == ["nsec", "sec"] and
                       all(type(v) is int and v >= 0 for v in profile[k].values())
                       for k in DURATIONS)
    # What we write ourselves keeps Humble's key order and block style, on one YAML line.
    profile, = yaml.safe_load(metadata_qos(bag)[LABEL_INFO])
    assert list(profile) == HUMBLE_KEYS
    lines = [line for line in (bag / "metadata.yaml").read_text().splitlines()
             if "offered_qos_profiles" in line]
    assert len(lines) == 5 and all(line.endswith('"') or line.endswith("''") for line in lines)


def test_rosbags_reads_the_recorded_profiles(bag):
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import QosDurability, QosReliability
    with AnyReader([bag], default_typestore=HUMBLE) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
        assert sum(1 for _ in reader.messages()) == 2 * 4 + 1
    (latched,) = qos[LABEL_INFO]
    assert latched.durability == QosDurability.TRANSIENT_LOCAL
    assert latched.reliability == QosReliability.RELIABLE and latched.depth == 1
    assert all(q[0].durability == QosDurability.VOLATILE for t, q in qos.items() if t in IMAGES)
    assert qos[CAMERA] == []


def player_qos(profiles: list[dict]):
    """Return the QoS rosbag2's player publishes with (adapt_offer_to_recorded_offers)."""
    from rclpy.duration import Duration
    from rclpy.qos import (
        DurabilityPolicy,
        HistoryPolicy,
        LivelinessPolicy,
        QoSProfile,
        ReliabilityPolicy,
    )
    if not profiles:  # rosbag2's default offer: rclcpp::QoS(10)
        return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    p = profiles[0]

    def duration(d):
        return Duration(seconds=d["sec"], nanoseconds=d["nsec"])
    # History and depth are replaced by the default keep-last 10 (default_history()).
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy(p["reliability"]),
                      durability=DurabilityPolicy(p["durability"]),
                      deadline=duration(p["deadline"]), lifespan=duration(p["lifespan"]),
                      liveliness=LivelinessPolicy(p["liveliness"]),
                      liveliness_lease_duration=duration(p["liveliness_lease_duration"]),
                      avoid_ros_namespace_conventions=p["avoid_ros_namespace_conventions"])


def late_subscriber_gets(ros, topic: str, qos, raw: bytes, wait_s: float = 10.0) -> list:
    """Publish ``raw`` once with ``qos``; subscribe reliable + transient local a bit later."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from ros_helpers import spin_until
    from vision_msgs.msg import LabelInfo

    node = ros.create_node("fake_player")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        node.create_publisher(LabelInfo, topic, qos).publish(deserialize_message(raw, LabelInfo))
        spin_until(executor, lambda: False, 0.5)  # the player has published; nobody listened
        got: list = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(LabelInfo, topic, got.append, latched)
        spin_until(executor, lambda: bool(got), wait_s)
        return got
    finally:
        executor.shutdown()
        node.destroy_node()


def test_replayed_label_info_reaches_a_late_latched_subscriber(ros, bag):
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed")
    from rosbags.rosbag2 import Reader
    with Reader(bag) as reader:
        conn, = [c for c in reader.connections if c.topic == LABEL_INFO]
        (_, _, raw), = list(reader.messages(connections=[conn]))
    got = late_subscriber_gets(ros, LABEL_INFO, player_qos(yaml.safe_load(
        metadata_qos(bag)[LABEL_INFO])), bytes(raw))
    assert len(got) == 1
    assert [(c.class_id, c.class_name) for c in got[0].class_map] == \
        list(enumerate(CLASSES.names))
    # The check can fail: the player's default offer (an empty string) is not latched.
    assert late_subscriber_gets(ros, LABEL_INFO + "_default", player_qos([]), bytes(raw),
                                wait_s=3.0) == []

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

"""The node's parameters, QoS, runtime changes (through the real services) and diagnostics.

In-process on real rclpy, as test_node.py; the node process itself (main, signals,
start-up errors) is tested in test_node_process.py.
"""
import numpy as np
import pytest
from ros_helpers import (
    TOPIC,
    as_array,
    call_service,
    check_color_and_overlay,
    image_msg,
    synthetic_frame,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_descriptors_qos_and_teardown(rig):
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    from canet_ros.ros.params import SPEC_BY_NAME
    node = rig.node()
    plain = Node("plain_node")  # the parameters rclpy declares itself (use_sim_time, ...)
    rclpy_own = set(plain.get_parameters_by_prefix(""))
    plain.destroy_node()
    # What the node declared, not the specs: a declare_parameter without a spec shows here.
    declared = set(node.get_parameters_by_prefix("")) - rclpy_own
    assert declared == set(SPEC_BY_NAME)
    for name in declared:
        descriptor = node.describe_parameter(name)
        assert descriptor.description, name
        assert descriptor.read_only == SPEC_BY_NAME[name].read_only, name
    alpha = node.describe_parameter("overlay_alpha").floating_point_range[0]
    assert (alpha.from_value, alpha.to_value) == (0.0, 1.0)
    assert node.describe_parameter("backbone").additional_constraints.startswith("one of")
    subscription, = node.subscriptions
    assert (subscription.qos_profile.history, subscription.qos_profile.depth) == (
        HistoryPolicy.KEEP_LAST, 1)
    graph = rig.probe.node
    assert rig.spin_until(lambda: graph.get_subscriptions_info_by_topic(TOPIC))
    seen, = graph.get_subscriptions_info_by_topic(TOPIC)  # as DDS announces it
    assert seen.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    for name in ("labels", "color", "overlay"):
        assert rig.spin_until(lambda n=name: graph.get_publishers_info_by_topic(
            f"/segmentation/{n}"))
        writer, = graph.get_publishers_info_by_topic(f"/segmentation/{name}")
        assert (writer.qos_profile.reliability, writer.qos_profile.durability) == (
            ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)
    reliable = rig.node(node_name="reliable", qos_reliability="reliable")
    profile = next(iter(reliable.subscriptions)).qos_profile
    # Still depth 1: a deeper reader fills under a fast camera and old frames get segmented.
    assert (profile.reliability, profile.history, profile.depth) == (
        ReliabilityPolicy.RELIABLE, HistoryPolicy.KEEP_LAST, 1)
    node.destroy_node()
    assert not node.worker_alive and node.engine is None
    node.destroy_node()  # idempotent
    rig.nodes.remove(node)
    rig.executor.remove_node(node)


def test_a_reliable_burst_is_segmented_from_its_newest_frame(rig):
    """A reliable burst behind a busy node: its newest frame is segmented, not a queued one.

    The frames DDS replaced in the depth-1 reader never reach the node: received_total
    falls short of the frames sent, which is docs/ros.md's check for a replay.
    """
    import threading

    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    gate = threading.Event()  # holds the first inference: the burst must queue behind it
    node = rig.node(gate=gate, qos_reliability="reliable")
    got = rig.listen(node, "labels")["labels"]
    camera = rig.probe.node.create_publisher(Image, TOPIC, QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE))
    assert rig.spin_until(lambda: camera.get_subscription_count() > 0)
    burst = 10
    for index in range(burst):
        camera.publish(image_msg(synthetic_frame(), frame_id=f"f{index}"))
    stats = node.frame_stats
    assert rig.spin_until(lambda: stats.totals()["received"] >= 1)
    rig.spin_until(lambda: False, timeout=0.5)  # whatever the reader still holds comes in
    gate.set()
    assert rig.spin_until(lambda: got and got[-1].header.frame_id == f"f{burst - 1}")
    rig.spin_until(lambda: False, timeout=0.3)  # anything more would show up now
    totals = stats.totals()
    assert totals["published"] + totals["dropped"] == totals["received"] == len(got) + \
        totals["dropped"]
    assert totals["received"] < burst  # what docs/ros.md's received_total check shows


def set_parameters(rig, **values):
    """Set values through /segmentation_node/set_parameters, as ros2 param set does."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                for k, v in values.items()])
    return call_service(rig, SetParameters, "/segmentation_node/set_parameters", request).results


def test_runtime_changes_through_the_parameter_service(rig):
    from rcl_interfaces.srv import SetParametersAtomically
    from rclpy.parameter import Parameter
    node = rig.node()
    got = rig.listen(node, "labels", "color", "overlay")
    assert set_parameters(rig, overlay_alpha=0.8)[0].successful
    assert node.get_parameter("overlay_alpha").value == 0.8
    bgr = synthetic_frame(seed=8)
    rig.send(node, image_msg(bgr))
    out = rig.wait_for(got)
    assert node.engine.calls[-1]["alpha"] == 0.8
    check_color_and_overlay(as_array(out["labels"]), as_array(out["color"]),
                            as_array(out["overlay"]), bgr, "bgr", alpha=0.8)
    for name, value in (("backbone", "resnet18"), ("resolution", "64x64"),
                        ("image_topic", "/other")):
        result, = set_parameters(rig, **{name: value})
        # Our reason, not rclpy's bare "Trying to set a read-only parameter".
        assert not result.successful and "restart the node" in result.reason, result.reason
        assert name in result.reason
    for value in (1.5, "high"):
        result, = set_parameters(rig, overlay_alpha=value)
        assert not result.successful and result.reason
    assert set_parameters(rig, use_sim_time=False)[0].successful
    both = [Parameter("overlay_alpha", value=0.3).to_parameter_msg(),
            Parameter("device", value="cuda").to_parameter_msg()]
    result = call_service(
        rig, SetParametersAtomically, "/segmentation_node/set_parameters_atomically",
        SetParametersAtomically.Request(parameters=both)).result
    assert not result.successful and "restart the node" in result.reason
    assert node.get_parameter("overlay_alpha").value == 0.8  # all or nothing
    direct, = node.set_parameters([Parameter("precision", value="fp16")])
    assert not direct.successful and "restart the node" in direct.reason


def test_statistics_on_diagnostics_and_rosout(rig):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rcl_interfaces.msg import Log
    node = rig.node(stats_period=0.5)
    rosout = rig.probe.rosout()
    diagnostics = rig.probe.listen("/diagnostics", DiagnosticArray)
    got = rig.listen(node, "labels")
    # Stamped now: a stamp far from the node's clock is left out of the latency.
    now = node.get_clock().now().seconds_nanoseconds()
    rig.send(node, image_msg(synthetic_frame(), stamp=now))
    rig.wait_for(got)

    def status_where(key, value):
        for array in diagnostics:
            status, = array.status
            values = {kv.key: kv.value for kv in status.values}
            if values.get(key) == value:
                return status, values
        return None

    assert rig.spin_until(lambda: status_where("published_total", "1"))
    status, values = status_where("published_total", "1")
    assert status.level == DiagnosticStatus.OK and status.hardware_id
    assert status.name == "/segmentation_node: CANet segmentation"
    assert (values["resolution"], values["backbone"], values["input_topic"]) == (
        "128x96", "mobilenetv2", TOPIC)
    assert float(values["stamp_to_publish_p50_ms"]) > 0
    assert float(values["callback_to_publish_p99_ms"]) > 0
    assert all(isinstance(v, str) for v in values.values())
    assert any(m.level == Log.INFO and "out " in m.msg and "fps" in m.msg for m in rosout)
    bad = image_msg(synthetic_frame())
    bad.encoding = "bogus"
    rig.send(node, bad)
    assert rig.spin_until(lambda: status_where("malformed_window", "1"))
    status, values = status_where("malformed_window", "1")
    assert status.level == DiagnosticStatus.WARN and values["malformed_total"] == "1"
    assert status.message.startswith("malformed input or failed inference")
    assert np.isfinite(float(values["output_fps"]))

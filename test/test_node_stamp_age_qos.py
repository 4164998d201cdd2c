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


"""The node's stamp-to-publish age on a clock the test controls, and its input durability.

In-process on real rclpy, as test_node.py. With ``use_sim_time`` the node's clock stands
still at the time set here, so a frame's age is exactly now - stamp, however long the
inference takes, and a slip in the stamp's nanoseconds shows as a wrong age.
"""
import pytest
from ros_helpers import TOPIC, image_msg, synthetic_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stamp_age_counts_nanoseconds(rig):
    from rclpy.clock import ClockType
    from rclpy.time import Time

    node = rig.node(use_sim_time=True)
    clock = node.get_clock()
    assert clock.ros_time_is_active
    clock.set_ros_time_override(Time(seconds=101, nanoseconds=200_000_000,
                                     clock_type=ClockType.ROS_TIME))
    got = rig.listen(node, "labels")
    # 101.2 s - 100.9 s = 0.3 s: the nanoseconds borrow a second, so dropping either
    # side's nanoseconds, or the borrow, gives another age.
    rig.send(node, image_msg(synthetic_frame(), stamp=(100, 900_000_000)))
    rig.wait_for(got)
    assert rig.spin_until(lambda: node.frame_stats.totals()["published"] == 1)
    report = node.frame_stats.report()
    assert report.stamp_latency_ms == pytest.approx((300.0, 300.0), abs=1e-6)
    assert dict(report.key_values())["stamp_to_publish_p50_ms"] == "300.00"


def test_input_subscription_is_volatile(rig):
    from rclpy.qos import DurabilityPolicy

    # A camera driver publishes volatile: a transient-local reader would never match it.
    for params in ({}, {"qos_reliability": "reliable"}):
        node = rig.node(node_name=f"durability_{len(rig.nodes)}", **params)
        subscription, = node.subscriptions
        assert subscription.qos_profile.durability == DurabilityPolicy.VOLATILE
    graph = rig.probe.node
    assert rig.spin_until(lambda: len(graph.get_subscriptions_info_by_topic(TOPIC)) == 2)
    for seen in graph.get_subscriptions_info_by_topic(TOPIC):  # as DDS announces it
        assert seen.qos_profile.durability == DurabilityPolicy.VOLATILE

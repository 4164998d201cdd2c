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

"""The node under use_sim_time, as with 'ros2 bag play --clock': statistics keep coming.

In-process on real rclpy, as test_node_params.py. /clock is published by the probe.
"""
import pytest
from ros_helpers import image_msg, synthetic_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _latest(diagnostics):
    status, = diagnostics[-1].status
    return {kv.key: kv.value for kv in status.values}


def test_statistics_without_clock_and_latency_on_the_simulated_clock(rig):
    from diagnostic_msgs.msg import DiagnosticArray
    from rosgraph_msgs.msg import Clock
    node = rig.node(stats_period=0.3, use_sim_time=True)
    diagnostics = rig.probe.listen("/diagnostics", DiagnosticArray)
    got = rig.listen(node, "labels")
    stamp = (1000, 0)
    rig.send(node, image_msg(synthetic_frame(), stamp=stamp))
    rig.wait_for(got)
    # No /clock yet (the bag not started, or played without --clock): the ROS clock reads
    # 0, but reports come every stats_period of wall time, and the age is unknown, not
    # 1000 s negative.
    assert rig.spin_until(lambda: diagnostics and _latest(diagnostics)["published_total"] == "1")
    assert _latest(diagnostics)["stamp_to_publish_p50_ms"] == "n/a"
    clock = rig.probe.node.create_publisher(Clock, "/clock", 10)
    sim_now = Clock()
    sim_now.clock.sec, sim_now.clock.nanosec = 1000, 250_000_000
    assert rig.spin_until(lambda: clock.get_subscription_count() > 0)
    clock.publish(sim_now)
    assert rig.spin_until(lambda: node.get_clock().now().nanoseconds == 1_000_250_000_000)
    # The clock stands at 1000.25 s (a paused bag): a frame stamped 1000.0 is 250 ms old.
    rig.send(node, image_msg(synthetic_frame(), stamp=stamp))
    assert rig.spin_until(lambda: len(got["labels"]) == 2)
    assert rig.spin_until(lambda: _latest(diagnostics)["published_window"] == "1"
                          and _latest(diagnostics)["published_total"] == "2")
    assert float(_latest(diagnostics)["stamp_to_publish_p50_ms"]) == pytest.approx(250.0)

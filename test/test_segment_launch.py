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

"""launch_pytest: segment.launch.py, included by the test, answers a frame with its outputs.

Runs under the README's test command wherever the launch stack is installed
(tools/bootstrap.sh, from ../shared/ros-wheels/jazzy, or a ROS host): canet_ros is built
with colcon in a temporary workspace (ros_workspace.py) and this process gets the
environment ``source install/setup.bash`` gives. launch_pytest 3.4.3 (Jazzy) cannot
collect a launch test under pytest >= 8.4; there, and where launch is missing, the test
is skipped with the reason (never the module: see pyproject.toml).
"""
import time

import numpy as np
import pytest
from ros_helpers import SEEDED_RESOLUTION, as_array, seeded_checkpoint

NAMESPACE = "launch_pytest"
INPUT = f"/{NAMESPACE}/image_raw"
EXPECTED = {"labels": "mono8", "color": "rgb8", "overlay": "bgr8"}


def _launch_pytest():
    """(launch_pytest, None) where a launch test can run here, else (None, why not)."""
    try:
        import launch  # noqa: F401
        import launch_pytest
        import launch_ros  # noqa: F401
    except ImportError as exc:
        return None, (f"ROS 2 launch is not installed ({exc.name} is missing): "
                      "tools/bootstrap.sh installs it from ../shared/ros-wheels/jazzy; on a "
                      "ROS host, source /opt/ros/<distro>/setup.bash")

    def probe():
        return None
    # launch_pytest's collection hook reads this attribute, which pytest >= 8.4's
    # fixture objects no longer have (ros2/launch#979): the launch test would not collect.
    if not hasattr(launch_pytest.fixture(probe), "_pytestfixturefunction"):
        return None, (f"launch_pytest cannot collect launch tests under pytest "
                      f"{pytest.__version__} (it needs < 8.4; tools/bootstrap.sh pins 7.4.4, "
                      "what ROS 2 Jazzy ships)")
    return launch_pytest, None


launch_pytest, REASON = _launch_pytest()


@pytest.fixture(scope="module")
def sourced(colcon_workspace):
    """Set this process up as ``source install/setup.bash`` does: launch finds canet_ros."""
    patch = pytest.MonkeyPatch()
    for name, value in colcon_workspace.env.items():
        patch.setenv(name, value)
    yield colcon_workspace
    patch.undo()


if REASON is None:
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    @launch_pytest.fixture
    def segment_launch(sourced, tmp_path_factory):
        from ament_index_python.packages import get_package_share_directory
        launch_file = f"{get_package_share_directory('canet_ros')}/launch/segment.launch.py"
        model = seeded_checkpoint(tmp_path_factory.mktemp("launch_pytest") / "seeded.pt")
        arguments = {"namespace": NAMESPACE, "image_topic": INPUT, "checkpoint": str(model),
                     "resolution": "x".join(map(str, SEEDED_RESOLUTION)), "device": "cpu",
                     "qos_reliability": "reliable", "stats_period": "60.0"}
        return LaunchDescription([
            IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file),
                                     launch_arguments=arguments.items()),
            launch_pytest.actions.ReadyToTest(),
        ])

    @pytest.mark.launch(fixture=segment_launch)
    def test_image_in_labels_colour_and_overlay_out(ros, request):
        """``ros`` (conftest.py) has initialised rclpy for the whole run."""
        assert request.config.pluginmanager.has_plugin("launch_pytest")
        check_outputs(ros)
else:
    def test_image_in_labels_colour_and_overlay_out():
        print(f"SKIP: {REASON}")
        pytest.skip(REASON)


def check_outputs(rclpy):
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from canet_ros import image_codec
    probe = Node("segment_launch_probe")
    try:
        got = {}
        for name in EXPECTED:
            probe.create_subscription(Image, f"/{NAMESPACE}/segmentation/{name}",
                                      lambda msg, name=name: got.setdefault(name, msg), 10)
        publisher = probe.create_publisher(Image, INPUT, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE))
        frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        msg = Image()
        image_codec.fill_image(msg, frame, "bgr8")
        msg.header.frame_id = "launch_probe"
        deadline = time.monotonic() + 300.0  # model load and discovery on a shared machine
        while len(got) < len(EXPECTED) and time.monotonic() < deadline:
            msg.header.stamp = probe.get_clock().now().to_msg()
            publisher.publish(msg)
            rclpy.spin_once(probe, timeout_sec=0.2)
        assert set(got) == set(EXPECTED), f"only got {sorted(got)}"
        for name, encoding in EXPECTED.items():
            out = got[name]
            assert (out.width, out.height, out.encoding) == (160, 120, encoding)
            assert out.header.frame_id == "launch_probe"
        assert as_array(got["labels"]).max() < 11  # CamVid's 11 classes
    finally:
        probe.destroy_node()

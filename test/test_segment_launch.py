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

"""launch_pytest: segment.launch.py starts a node that answers an image with its outputs.

Needs a ROS 2 (Humble/Jazzy) workspace with canet_ros built and sourced (colcon build &&
colcon test). Skipped, with the reason, where launch is not installed (the pip wheels
the other node tests use have no launch) or where launch_pytest cannot load under the
installed pytest (launch_testing 3.7 does not under pytest 9; ROS's own is 7.4).
"""
import pytest


def _launch_pytest_or_skip():
    try:
        import launch  # noqa: F401
        import launch_pytest
        import launch_ros  # noqa: F401
    except ImportError as exc:
        reason = (f"ROS 2 launch is not installed ({exc.name} is missing): this test needs a "
                  "sourced ROS 2 Humble/Jazzy workspace with canet_ros built "
                  "(colcon build && colcon test)")
    except Exception as exc:  # an incompatible pytest breaks launch_testing's own imports
        reason = (f"launch_pytest cannot load under pytest {pytest.__version__} "
                  f"({type(exc).__name__}: {exc}); run it with the pytest your ROS "
                  "distribution ships (7.4 on Ubuntu 24.04)")
    else:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
        try:
            get_package_share_directory("canet_ros")
            return launch_pytest
        except PackageNotFoundError:
            reason = ("canet_ros is not installed in a sourced ROS 2 workspace "
                      "(colcon build && source install/setup.bash)")
    print(f"SKIP: {reason}")
    pytest.skip(reason, allow_module_level=True)


launch_pytest = _launch_pytest_or_skip()

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from canet_ros import image_codec  # noqa: E402

NAMESPACE = "launch_test"
INPUT = f"/{NAMESPACE}/image_raw"
EXPECTED = {"labels": "mono8", "color": "rgb8", "overlay": "bgr8"}


def _checkpoint():
    """Return the bundled model when installed, else a tiny untrained one.

    The pipeline is under test here, not the accuracy.
    """
    from canet_ros.checkpoint import DEFAULT_CHECKPOINT, build_metadata, save_checkpoint
    if DEFAULT_CHECKPOINT.is_file():
        return "default"
    from canet_ros.classes import CAMVID
    from canet_ros.models import build_canet
    path = Path(tempfile.mkdtemp(prefix="canet_launch_")) / "tiny.pt"
    save_checkpoint(path, build_canet("mobilenetv2", 11),
                    build_metadata("mobilenetv2", CAMVID, input_size=(128, 96)))
    return str(path)


@launch_pytest.fixture
def segment_launch():
    share = Path(get_package_share_directory("canet_ros"))
    arguments = {"namespace": NAMESPACE, "image_topic": INPUT, "checkpoint": _checkpoint(),
                 "resolution": "128x96", "device": "cpu"}
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(share / "launch" / "segment.launch.py")),
            launch_arguments=arguments.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=segment_launch)
def test_image_in_labels_colour_and_overlay_out(ros):
    """``ros`` (conftest.py) has initialised rclpy for the whole run."""
    probe = Node("segment_launch_probe")
    try:
        got = {}
        for name in EXPECTED:
            probe.create_subscription(Image, f"/{NAMESPACE}/segmentation/{name}",
                                      lambda msg, name=name: got.setdefault(name, msg), 10)
        publisher = probe.create_publisher(Image, INPUT, qos_profile_sensor_data)
        frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        msg = Image()
        image_codec.fill_image(msg, frame, "bgr8")
        msg.header.frame_id = "launch_probe"
        deadline = time.monotonic() + 120.0  # model load and discovery
        while len(got) < len(EXPECTED) and time.monotonic() < deadline:
            msg.header.stamp = probe.get_clock().now().to_msg()
            publisher.publish(msg)
            ros.spin_once(probe, timeout_sec=0.2)
        assert set(got) == set(EXPECTED), f"only got {sorted(got)}"
        for name, encoding in EXPECTED.items():
            out = got[name]
            assert (out.width, out.height, out.encoding) == (160, 120, encoding)
            assert out.header.frame_id == "launch_probe"
    finally:
        probe.destroy_node()

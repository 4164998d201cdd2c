"""launch_pytest: segment.launch.py starts a node that answers an image with its outputs.

Needs a ROS 2 (Humble/Jazzy) workspace with canet_ros built and sourced; skipped elsewhere.
"""
import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest",
    reason="launch_pytest is not installed: this test needs a sourced ROS 2 Humble/Jazzy "
           "workspace with canet_ros built (colcon build && colcon test)")

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
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
def test_image_in_labels_colour_and_overlay_out():
    rclpy.init()
    try:
        probe = Node("segment_launch_probe")
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
            rclpy.spin_once(probe, timeout_sec=0.2)
        assert set(got) == set(EXPECTED), f"only got {sorted(got)}"
        for name, encoding in EXPECTED.items():
            out = got[name]
            assert (out.width, out.height, out.encoding) == (160, 120, encoding)
            assert out.header.frame_id == "launch_probe"
        probe.destroy_node()
    finally:
        rclpy.shutdown()

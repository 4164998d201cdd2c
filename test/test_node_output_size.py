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

"""The node's ``output_size`` parameter: every output at the network's size, on request.

segnet, Isaac ROS and Autoware publish their masks at the network's size; with
``output_size: network`` this node does too, for a camera frame of any other size. The
labels are compared with a separate engine built with ``output_size="network"``, the
colours with the class palette, the overlay with a blend by hand on the frame resized
with OpenCV. In-process on real rclpy, as test_node.py.
"""
import cv2
import numpy as np
import pytest
from ros_helpers import (
    SEEDED_RESOLUTION,
    as_array,
    assert_labels_vary,
    call_service,
    image_msg,
    palette,
    synthetic_frame,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CAMERA = (1920, 1200)  # W, H: a 16:10 camera, neither the network's size nor its shape
ALPHA = 0.4


def rosout(rig) -> list:
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    # Transient local as /rosout's writers are: the ready line is logged before the probe
    # has matched the node, and still arrives.
    return rig.probe.listen("/rosout", Log, QoSProfile(
        depth=1000, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))


def test_network_output_size_gives_network_sized_outputs(rig):
    from diagnostic_msgs.msg import DiagnosticArray
    lines = rosout(rig)
    diagnostics = rig.probe.listen("/diagnostics", DiagnosticArray)
    node = rig.node(output_size="network", publish_confidence=True, overlay_alpha=ALPHA,
                    stats_period=0.5)
    got = rig.listen(node, "labels", "color", "overlay", "confidence")
    bgr = synthetic_frame(CAMERA[1], CAMERA[0], seed=3)
    msg = image_msg(bgr, "bgr8", frame_id="wide_cam", stamp=(1_700_000_123, 987_654_321))
    # Straight into the node's callback: a 6.9 MB frame need not cross DDS for this test.
    rig.deliver(node, msg)
    out = rig.wait_for(got)
    width, height = SEEDED_RESOLUTION
    for name, encoding in (("labels", "mono8"), ("color", "rgb8"), ("overlay", "bgr8"),
                           ("confidence", "mono8")):
        assert (out[name].width, out[name].height, out[name].encoding) == (
            width, height, encoding), name
        assert out[name].header == msg.header, name
    reference = rig.engine(rig.checkpoint, device="cpu", precision="fp32",
                           output_size="network")
    expected = reference.infer(bgr, "bgr", confidence=True)
    assert expected.labels.shape == (height, width)
    labels = as_array(out["labels"])
    assert_labels_vary(expected.labels)
    assert (labels == expected.labels).mean() >= 0.999
    colour = palette()[labels]
    np.testing.assert_array_equal(as_array(out["color"]), colour)
    # Bilinear as OpenCV, through 16-bit steps: a level off the resize, 0.5 off the rounding.
    small = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR).astype(float)
    blend = (1 - ALPHA) * small + ALPHA * colour[..., ::-1].astype(float)
    assert np.abs(as_array(out["overlay"]).astype(float) - blend).max() <= 1.1
    confidence = as_array(out["confidence"]).astype(int)
    assert np.abs(confidence - expected.confidence.astype(int)).max() <= 1
    assert rig.spin_until(lambda: any("ready:" in m.msg for m in lines))
    ready, = [m.msg for m in lines if "ready:" in m.msg]
    assert f"at the network's size ({width}x{height})" in ready, ready

    def reported():
        return [{kv.key: kv.value for kv in status.values}
                for array in diagnostics for status in array.status]
    assert rig.spin_until(lambda: reported())
    assert reported()[-1]["output_size"] == "network"


def test_output_size_is_checked_and_read_only(rig):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import StartupError
    with pytest.raises(StartupError, match=r"output_size 'camera' is not one of: input, "
                                           r"network"):
        rig.node(output_size="camera")
    node = rig.node()
    assert node.get_parameter("output_size").value == "input"
    descriptor = node.describe_parameter("output_size")
    assert descriptor.read_only and descriptor.additional_constraints == (
        "one of: input, network")
    result, = call_service(rig, SetParameters, "/segmentation_node/set_parameters",
                           SetParameters.Request(parameters=[
                               Parameter("output_size", value="network").to_parameter_msg()])
                           ).results
    assert not result.successful and result.reason == (
        "parameter 'output_size' is read-only: it is fixed when the node starts; restart the "
        "node to change it")

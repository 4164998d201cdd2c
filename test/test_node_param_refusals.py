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

"""What ``ros2 param set`` and ``ros2 param describe`` tell a user about a parameter.

A misspelt name at run time was refused with rclpy's "Invalid access to undeclared
parameter(s): []", naming nothing; resolution's descriptor showed no bounds although
docs/ros.md gives them (32 to 16384 pixels per side). In-process on real rclpy, through
the node's parameter services as the ros2 CLI calls them.
"""
import pytest
from ros_helpers import call_service

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MISSPELT = "'overlay_alpah' (did you mean 'overlay_alpha'?)"


def _messages(**values):
    from rclpy.parameter import Parameter
    return [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]


def test_a_misspelt_name_at_run_time_is_refused_naming_it(rig):
    from rcl_interfaces.srv import SetParameters, SetParametersAtomically
    from rclpy.exceptions import ParameterNotDeclaredException
    from rclpy.parameter import Parameter
    node = rig.node()
    result, = call_service(rig, SetParameters, "/segmentation_node/set_parameters",
                           SetParameters.Request(parameters=_messages(overlay_alpah=0.7))
                           ).results
    assert not result.successful and MISSPELT in result.reason, result.reason
    assert "overlay_alpha" in result.reason.split(";")[1]  # and the names it does have
    both = call_service(
        rig, SetParametersAtomically, "/segmentation_node/set_parameters_atomically",
        SetParametersAtomically.Request(parameters=_messages(
            overlay_alpha=0.2, image_topik="/x"))).result
    assert not both.successful and "'image_topik' (did you mean 'image_topic'?)" in both.reason
    # Called directly, rclpy's exception type still, now with the words; nothing is set.
    with pytest.raises(ParameterNotDeclaredException, match=r"did you mean 'overlay_alpha'"):
        node.set_parameters([Parameter("overlay_alpha", value=0.2),
                             Parameter("overlay_alpah", value=0.7)])
    assert node.get_parameter("overlay_alpha").value == 0.5
    assert not node.has_parameter("overlay_alpah")
    ok, = node.set_parameters([Parameter("overlay_alpha", value=0.2)])
    assert ok.successful and node.get_parameter("overlay_alpha").value == 0.2


def test_a_node_that_allows_undeclared_names_still_takes_them(rig):
    # An embedding host may build the node so; rclpy then keeps any name, and so does it.
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode
    node = SegmentationNode(
        "open_node", allow_undeclared_parameters=True,
        parameter_overrides=[Parameter("checkpoint", value=rig.checkpoint),
                             Parameter("device", value="cpu"),
                             Parameter("precision", value="fp32")],
        engine_factory=rig.engine)
    rig.nodes.append(node)
    result, = node.set_parameters([Parameter("host_setting", value=3)])
    assert result.successful and node.get_parameter("host_setting").value == 3


def test_resolution_describes_its_bounds(rig):
    from rcl_interfaces.srv import DescribeParameters
    rig.node()
    # What `ros2 param describe /segmentation_node resolution` prints as constraints.
    descriptor, = call_service(rig, DescribeParameters, "/segmentation_node/describe_parameters",
                               DescribeParameters.Request(names=["resolution"])).descriptors
    text = descriptor.additional_constraints
    assert "32" in text and "16384" in text and "WIDTHxHEIGHT" in text, text

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

"""Names the node is given but does not use, and node names that share its output topics.

rclpy keeps a value for any parameter name without a word, so a misspelt name or one
copied from another segmentation node's configuration would do nothing, silently. And
two nodes told apart only by node name publish on the same relative output topics.
Both are warned about; these tests give the node such input as a user would.
"""
import pytest

from canet_ros.ros.params import SPECS, unknown_parameters

KNOWN = [spec.name for spec in SPECS]


def test_only_names_the_node_lacks_are_reported_with_the_nearest_known_one():
    given = ["overlay_alpah", "mask_filter", "overlay_alpha", "use_sim_time", "resolution"]
    text = unknown_parameters(given, ["overlay_alpha", "use_sim_time", "resolution"])
    assert text.startswith("ignoring parameters this node does not have: "
                           "'mask_filter', 'overlay_alpah' (did you mean 'overlay_alpha'?);")
    assert "'resolution'" not in text.split(";")[0]
    assert unknown_parameters(["image_topik"], []).startswith(
        "ignoring parameter this node does not have: 'image_topik' (did you mean "
        "'image_topic'?)")
    assert unknown_parameters(KNOWN + ["use_sim_time"], KNOWN + ["use_sim_time"]) is None
    assert unknown_parameters([], []) is None


@pytest.mark.usefixtures("ros")
def test_a_node_process_names_what_it_ignores_from_the_command_line_and_params_file(tmp_path):
    from ros_processes import start_node
    params = tmp_path / "params.yaml"
    # A file shared with another node's settings, as a switcher from segnet writes it.
    params.write_text("/**:\n  ros__parameters:\n    class_colors_path: colors.txt\n"
                      "    overlay_alpah: 0.7\n")
    # resolution:=abc ends the start-up before torch loads; the warning comes first.
    run = start_node("--params-file", str(params), "-p", "mask_filter:=linear",
                     "-p", "resolution:=abc", name="unknown names")
    code = run.wait(120)
    run.stop()
    assert code == 1, run.output
    warned = [line for _, line in run.lines if "[WARN]" in line and "does not have" in line]
    assert len(warned) == 1, run.output
    for words in ("'class_colors_path'", "'mask_filter'",
                  "'overlay_alpah' (did you mean 'overlay_alpha'?)"):
        assert words in warned[0], warned[0]
    clean = start_node("-p", "resolution:=abc", "-p", "overlay_alpha:=0.7", name="known names")
    assert clean.wait(120) == 1
    clean.stop()
    assert "does not have" not in clean.output, clean.output


def test_two_nodes_on_the_same_outputs_each_name_the_other(rig):
    from rcl_interfaces.msg import Log
    rosout = rig.probe.rosout()
    rig.node(node_name="seg_front", stats_period=0.2)
    rig.node(node_name="seg_rear", stats_period=0.2)
    # The same node name in a namespace of its own: other topics, nothing to warn about.
    rig.node(node_name="seg_front", stats_period=0.2, cli_args=["--ros-args", "-r",
                                                                "__ns:=/cam_side"])

    def warned(node):  # about shared outputs: a node with no camera also warns of that
        return [m.msg for m in rosout
                if m.level == Log.WARN and m.name == node and "also publish" in m.msg]

    expected = {"seg_front": "/seg_rear also publishes on /segmentation/labels",
                "seg_rear": "/seg_front also publishes on /segmentation/labels"}
    assert rig.spin_until(lambda: all(any(words in m for m in warned(node))
                                      for node, words in expected.items()), timeout=30), \
        [(m.name, m.msg) for m in rosout if m.level >= Log.WARN]
    rig.spin_until(lambda: False, timeout=1.0)  # five more reports each
    for node in expected:
        assert len(warned(node)) == 1, "one warning while the same nodes share the topic"
    # A third node joining the topic is news: each warns again, naming both others.
    rig.node(node_name="seg_third", stats_period=0.2)
    assert rig.spin_until(lambda: any("/seg_rear, /seg_third also publish on" in m
                                      for m in warned("seg_front")), timeout=30), \
        warned("seg_front")
    assert not [m for m in rosout if m.level >= Log.WARN and "cam_side" in m.name
                and "also publish" in m.msg], \
        [(m.name, m.msg) for m in rosout if "cam_side" in m.name]


def test_two_nodes_of_the_same_name_and_namespace_warn_too(rig):
    # Two `ros2 run`s that differ only in image_topic: the commonest way to share topics.
    from rcl_interfaces.msg import Log
    rosout = rig.probe.rosout()
    for topic in ("/left/image_raw", "/right/image_raw"):
        rig.node(node_name="twin", image_topic=topic, stats_period=0.2)
    words = "1 other node named /twin also publishes on /segmentation/labels"
    assert rig.spin_until(lambda: any(m.level == Log.WARN and words in m.msg for m in rosout),
                          timeout=30), [(m.name, m.msg) for m in rosout if m.level >= Log.WARN]


def test_the_namespace_advice_followed_as_written_parts_the_topics(rig):
    # It said "namespace:=cam_front", a launch argument: as a node parameter (-p) it is
    # ignored, and the nodes go on sharing their topics.
    import re

    from rcl_interfaces.msg import Log
    rosout = rig.probe.rosout()
    first = rig.node(node_name="twin", stats_period=0.2)
    rig.node(node_name="twin", image_topic="/right/image_raw", stats_period=0.2)
    assert rig.spin_until(lambda: any("also publishes" in m.msg for m in rosout), timeout=30)
    advice, = {re.search(r"--ros-args (-r \S+:=\S+);", m.msg).group(1) for m in rosout
               if m.level == Log.WARN and "also publishes" in m.msg}
    rig.executor.remove_node(first)
    rig.nodes.remove(first)
    first.destroy_node()
    moved = rig.node(node_name="twin", stats_period=0.2,
                     cli_args=["--ros-args", *advice.split(" ", 1)])
    assert moved.resolve_topic_name("segmentation/labels") == "/cam_front/segmentation/labels"
    rig.spin_until(lambda: False, timeout=1.5)  # several reports of the moved node
    assert not [m.msg for m in rosout if m.name == "cam_front.twin" and "also publish" in m.msg]
    assert [m for m in rosout if m.name == "cam_front.twin" and "ready:" in m.msg]


def test_a_namespace_given_as_a_parameter_is_pointed_at_the_remap():
    text = unknown_parameters(["namespace", "node_name", "overlay_alpah"], [])
    assert "'namespace' (a namespace is not a parameter: --ros-args -r __ns:=/NAME" in text
    assert "'node_name' (a node name is not a parameter: --ros-args -r __node:=NAME)" in text
    assert "'overlay_alpah' (did you mean 'overlay_alpha'?)" in text


@pytest.mark.parametrize("name, given, hint", [
    ("overlay_alpha", 1, "write it with a decimal point (overlay_alpha:=0.5)"),
    ("stats_period", 0, "write it with a decimal point (stats_period:=5.0)"),
    ("resolution", 640, "give it as a string (-p \"resolution:='...'\")"),
])
def test_a_value_of_the_wrong_type_says_how_to_write_it(rig, name, given, hint):
    # What a shell gives for -p overlay_alpha:=1 (an integer); rclpy refuses it for a double.
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode, StartupError
    with pytest.raises(StartupError) as raised:
        SegmentationNode(f"typed_{name}", engine_factory=rig.engine, parameter_overrides=[
            Parameter("checkpoint", value=rig.checkpoint), Parameter(name, value=given)])
    assert str(raised.value).endswith(hint), str(raised.value)

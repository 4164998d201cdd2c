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

"""A params_file with nothing for the launched node stops the launch, naming why.

rcl applies only the sections whose key matches the node's full name and drops the rest
without a word: a ``ros2 param dump`` of a node (keyed ``/segmentation_node:``) given to
one launched with ``namespace:=cam_front``, or an empty file, started the node with every
default (the bundled model, not the user's). docs/ros.md: no argument is silently
ignored. What rcl itself gives a node from each file (a real rclpy node reading it) is
the expectation the launch's decision is checked against.
"""
from pathlib import Path

import pytest
from launch_recorder import record_started_plans

from canet_ros import launch_config as lc
from canet_ros import launch_multi_camera as mc
from canet_ros.params_file import full_node_name

REPO = Path(__file__).resolve().parents[1]
DUMP = """/segmentation_node:
  ros__parameters:
    checkpoint: /models/my_model.pt
    overlay_alpha: 0.3
    use_sim_time: false
"""
ALPHA = "  ros__parameters:\n    overlay_alpha: 0.3\n"
# (file text, namespace); whether the launch goes on is rcl's answer, asked in the test.
CASES = [
    (DUMP, "cam_front"),
    (DUMP, ""),
    ("", ""),
    ("# every line a comment\n", "cam_front"),
    ("segmentation_node:\n" + ALPHA, ""),
    ("/**:\n" + ALPHA, "/robot/cam_front"),
    ("/**/segmentation_node:\n" + ALPHA, "/robot/cam_front"),
    ("/*/segmentation_node:\n" + ALPHA, ""),
    ("/*/segmentation_node:\n" + ALPHA, "cam_front"),
    ("cam_front:\n  segmentation_node:\n  " + ALPHA.replace("\n    ", "\n      "), "cam_front"),
    ("cam_front:\n  segmentation_node:\n  " + ALPHA.replace("\n    ", "\n      "), "cam_rear"),
    ("/cam_front/other_node:\n" + ALPHA, "cam_front"),
]


def rcl_gives(path: Path, namespace: str) -> set:
    """Return the names rcl hands the segmentation node, in ``namespace``, from ``path``."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.node import Node

    def declared(args):
        context = rclpy.Context()
        rclpy.init(args=args, context=context)
        try:
            node = Node(lc.NODE_NAME, namespace=namespace or "/", context=context,
                        automatically_declare_parameters_from_overrides=True,
                        start_parameter_services=False, enable_rosout=False)
            names = set(node.list_parameters([], 0).names)
            node.destroy_node()
            return names
        finally:
            rclpy.shutdown(context=context)
    return declared(["--ros-args", "--params-file", str(path)]) - declared([])


@pytest.mark.parametrize("text, namespace", CASES)
def test_the_launch_goes_on_exactly_when_rcl_gives_the_node_something(tmp_path, text,
                                                                      namespace):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    reached = bool(rcl_gives(path, namespace))
    arguments = {"params_file": str(path), "namespace": namespace}
    if reached:
        assert lc.resolve_segment_launch(arguments, REPO).params_file == path.resolve()
        return
    with pytest.raises(lc.LaunchConfigError) as refused:
        lc.resolve_segment_launch(arguments, REPO)
    message = str(refused.value)
    full_name = "/" + "/".join(t for t in f"{namespace}/{lc.NODE_NAME}".split("/") if t)
    assert "\n" not in message and str(path) in message and full_name in message, message
    first_key = text.split(":")[0].strip()
    if first_key and not first_key.startswith("#"):  # the file's sections, as rcl reads them
        assert f"its sections: /{first_key.strip('/')}" in message, message
    else:
        assert "it has none" in message, message


def test_a_dump_passed_back_in_a_namespace_is_refused_as_the_user_sees_it(tmp_path):
    path = tmp_path / "dump.yaml"
    path.write_text(DUMP)
    with pytest.raises(lc.LaunchConfigError) as refused:
        lc.resolve_segment_launch({"params_file": str(path), "namespace": "cam_front"}, REPO)
    assert str(refused.value) == (
        f"params_file {path} has no ros__parameters section for /cam_front/segmentation_node "
        "(its sections: /segmentation_node): none of its values would reach the node; key "
        "them /** (every node) or /cam_front/segmentation_node")


def test_multi_camera_refuses_a_file_that_reaches_neither_camera(tmp_path):
    path = tmp_path / "cameras.yaml"
    path.write_text("/segmentation_node:\n" + ALPHA)  # a dump of a node with no namespace
    values = {arg.name: arg.default for arg in mc.multi_camera_arguments()}
    with pytest.raises(lc.LaunchConfigError) as refused:
        mc.resolve_multi_camera_launch(dict(values, params_file=str(path)), REPO)
    assert str(refused.value) == (
        f"params_file {path} has no ros__parameters section for /cam_front/segmentation_node "
        "or /cam_rear/segmentation_node (its sections: /segmentation_node): none of its "
        "values would reach any of the nodes; key them /** (every node) or by a full name")
    for text in ("/**:\n" + ALPHA,
                 # settings for one camera only are a use of the file: the other keeps defaults
                 "/cam_front/segmentation_node:\n" + ALPHA):
        path.write_text(text)
        assert len(mc.resolve_multi_camera_launch(dict(values, params_file=str(path)),
                                                  REPO)) == 2


# -- the launch files themselves, run as ros2 launch runs them (no node is started) -----------
@pytest.fixture
def started(tmp_path, monkeypatch):
    """Record the plans of the nodes a launch would start; canet_ros's share is the repo."""
    pytest.importorskip("launch_ros", reason="ROS 2 launch is not installed")
    return record_started_plans(tmp_path, monkeypatch)


def ros2_launch(launch_file: str, *argv: str) -> int:
    api = pytest.importorskip("ros2launch.api", reason="ros2launch is not installed")
    return api.launch_a_launch_file(launch_file_path=str(REPO / "launch" / launch_file),
                                    launch_file_arguments=list(argv), noninteractive=True)


def test_the_launch_files_start_nothing_with_such_a_file(started, tmp_path):
    dump, empty = tmp_path / "dump.yaml", tmp_path / "empty.yaml"
    dump.write_text(DUMP)
    empty.write_text("")
    for argv in ((f"params_file:={dump}", "namespace:=cam_front"),
                 (f"params_file:={empty}",)):
        assert ros2_launch("segment.launch.py", *argv) != 0
    assert ros2_launch("multi_camera.launch.py", f"params_file:={dump}") != 0
    assert started == []
    assert ros2_launch("segment.launch.py", f"params_file:={dump}") == 0  # no namespace
    assert [plan.params_file for plan in started] == [dump.resolve()]


# -- under a PushRosNamespace (a user's bringup including ours) --------------------------------
def test_the_full_name_follows_launch_ros():
    name = "segmentation_node"
    assert full_node_name("", name) == "/segmentation_node"
    assert full_node_name("", name, "/robot1") == "/robot1/segmentation_node"
    assert full_node_name("cam_front", name, "robot1") == "/robot1/cam_front/segmentation_node"
    assert full_node_name("/cam_front", name, "/robot1") == "/cam_front/segmentation_node"
    assert full_node_name("", name, "/") == "/segmentation_node"


def test_a_pushed_namespace_decides_which_sections_reach(tmp_path):
    path = tmp_path / "robot1.yaml"
    path.write_text("/robot1/segmentation_node:\n" + ALPHA)  # ros2 param dump of the node
    lc.resolve_segment_launch({"params_file": str(path)}, REPO, pushed_namespace="/robot1")
    path.write_text(DUMP)  # keyed /segmentation_node: under /robot1 it reaches nothing
    with pytest.raises(lc.LaunchConfigError, match=r"section for /robot1/segmentation_node "):
        lc.resolve_segment_launch({"params_file": str(path)}, REPO, pushed_namespace="/robot1")
    values = {arg.name: arg.default for arg in mc.multi_camera_arguments()}
    path.write_text("/robot1/cam_rear/segmentation_node:\n" + ALPHA)
    assert len(mc.resolve_multi_camera_launch(dict(values, params_file=str(path)), REPO,
                                              pushed_namespace="robot1")) == 2
    with pytest.raises(lc.LaunchConfigError, match=r"for /cam_front/segmentation_node or "
                       r"/cam_rear/segmentation_node \(its sections: /robot1/cam_rear/"):
        mc.resolve_multi_camera_launch(dict(values, params_file=str(path)), REPO)  # no push


WRAPPER = """
from launch import LaunchDescription
from launch.actions import GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import PushRosNamespace

def generate_launch_description():
    return LaunchDescription([GroupAction([
        PushRosNamespace("robot1"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource({launch!r}),
                                 launch_arguments={{"params_file": {params!r}}}.items()),
    ])])
"""


@pytest.mark.parametrize("launch_file", ["segment.launch.py", "multi_camera.launch.py"])
def test_an_include_under_push_ros_namespace_takes_the_nodes_own_dump(started, tmp_path,
                                                                      launch_file):
    params = tmp_path / "robot1.yaml"
    params.write_text("/robot1/**:\n" + ALPHA if launch_file.startswith("multi")
                      else "/robot1/segmentation_node:\n" + ALPHA)
    wrapper = tmp_path / "bringup.launch.py"
    wrapper.write_text(WRAPPER.format(launch=str(REPO / "launch" / launch_file),
                                      params=str(params)))
    api = pytest.importorskip("ros2launch.api", reason="ros2launch is not installed")
    assert api.launch_a_launch_file(launch_file_path=str(wrapper), launch_file_arguments=[],
                                    noninteractive=True) == 0
    assert [plan.params_file for plan in started] == [params.resolve()] * len(started)
    assert len(started) == (2 if launch_file.startswith("multi") else 1)

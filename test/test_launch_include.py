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

"""segment.launch.py started the way ``ros2 launch`` starts it, directly or from a wrapper.

ros2launch's own launch_a_launch_file runs the file in this process, with the node start
replaced by a record of its plan: no colcon workspace, no node. docs/ros.md: started
directly, a name:=value segment.launch.py does not declare stops the launch; included
from the user's own launch file, only the values are checked.
"""
import textwrap
from pathlib import Path

import pytest
from launch_recorder import record_started_plans

pytest.importorskip("launch_ros", reason="ROS 2 launch is not installed")
ros2launch_api = pytest.importorskip("ros2launch.api", reason="ros2launch is not installed")

REPO = Path(__file__).resolve().parents[1]
SEGMENT = REPO / "launch" / "segment.launch.py"
WRAPPER = """
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="r0"),
        DeclareLaunchArgument("image_topic", default_value="/r0/image_raw"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource({segment!r}),
                                 launch_arguments={arguments}.items()),
    ])
"""


@pytest.fixture
def started(tmp_path, monkeypatch):
    """Record the plans of the nodes a launch would start; canet_ros's share is the repo."""
    return record_started_plans(tmp_path, monkeypatch)


def ros2_launch(launch_file, *argv):
    """Run ``ros2 launch launch_file *argv`` as ros2launch does; return its exit status."""
    return ros2launch_api.launch_a_launch_file(
        launch_file_path=str(launch_file), launch_file_arguments=list(argv), noninteractive=True)


def wrapper(tmp_path, arguments="{}"):
    path = tmp_path / "wrapper.launch.py"
    path.write_text(textwrap.dedent(WRAPPER.format(segment=str(SEGMENT), arguments=arguments)))
    return path


def test_started_directly_an_undeclared_name_stops_the_launch(started):
    assert ros2_launch(SEGMENT, "robot:=r1") != 0
    assert started == []
    assert ros2_launch(SEGMENT, "image_topic:=/cam/image_raw") == 0
    assert [plan.overrides for plan in started] == [{"image_topic": "/cam/image_raw"}]


def test_a_wrapper_given_all_its_arguments_is_not_refused_for_them(started, tmp_path):
    # Every argument the wrapper declares is on the command line: the launch
    # configurations segment.launch.py sees are exactly the command line's names.
    assert ros2_launch(wrapper(tmp_path), "robot:=r1", "image_topic:=/r1/image_raw") == 0
    assert [plan.overrides for plan in started] == [{"image_topic": "/r1/image_raw"}]


def test_a_wrapper_passing_launch_arguments_is_not_refused(started, tmp_path):
    launch_file = wrapper(tmp_path, '{"image_topic": LaunchConfiguration("image_topic")}')
    assert ros2_launch(launch_file, "robot:=r1", "image_topic:=/r1/cam") == 0
    assert [plan.overrides for plan in started] == [{"image_topic": "/r1/cam"}]


def test_an_included_file_still_checks_the_values(started, tmp_path):
    launch_file = wrapper(tmp_path, '{"image_topic": LaunchConfiguration("image_topic")}')
    assert ros2_launch(launch_file, "robot:=r1", "image_topic:=not a topic") != 0
    assert started == []

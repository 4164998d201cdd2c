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

"""Start one CANet segmentation node.

    ros2 launch canet_ros segment.launch.py backbone:=mobilenetv2 image_topic:=/camera/image_raw

Loads config/canet_<backbone>.yaml (or params_file); arguments left empty keep the
file's values. The node gets config/fastdds_large_images.xml as its Fast DDS profile
unless one is already set (dds_profile). The decisions live in canet_ros.launch_config,
which is unit-tested.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from canet_ros.launch_config import (
    NODE_EXECUTABLE,
    NODE_NAME,
    PACKAGE,
    SEGMENT_ARGUMENTS,
    resolve_segment_launch,
)


def _as_string(value):
    return ParameterValue(value, value_type=str)


def _segmentation_node(context):
    values = {arg.name: LaunchConfiguration(arg.name).perform(context)
              for arg in SEGMENT_ARGUMENTS}
    # Newer launch keeps its own environment (SetEnvironmentVariable); older uses os.environ.
    environ = getattr(context, "environment", os.environ)
    plan = resolve_segment_launch(values, get_package_share_directory(PACKAGE), environ)
    return [Node(
        package=PACKAGE,
        executable=NODE_EXECUTABLE,
        name=NODE_NAME,
        namespace=plan.namespace,
        parameters=plan.node_parameters(wrap=_as_string),
        additional_env=plan.environment,
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(arg.name, default_value=arg.default, description=arg.description)
         for arg in SEGMENT_ARGUMENTS]
        + [OpaqueFunction(function=_segmentation_node)]
    )

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

Every node parameter is an argument (``--show-args`` lists them); arguments left empty
keep the values of config/canet_<backbone>.yaml (or params_file). A name:=value this
file does not declare stops the launch, naming it. The node gets
config/fastdds_large_images.xml as its Fast DDS profile unless one is already set
(dds_profile). The decisions live in canet_ros.launch_config, which is unit-tested.
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription

from canet_ros.launch_config import PACKAGE, SEGMENT_ARGUMENTS, resolve_segment_launch
from canet_ros.ros.launch_actions import (
    declare,
    environment_of,
    nodes_from,
    pushed_namespace_of,
    values_of,
)


def _plan(context):
    return [resolve_segment_launch(values_of(context, SEGMENT_ARGUMENTS),
                                   get_package_share_directory(PACKAGE),
                                   environment_of(context),
                                   pushed_namespace=pushed_namespace_of(context))]


def generate_launch_description():
    return LaunchDescription(declare(SEGMENT_ARGUMENTS, "segment.launch.py")
                             + [nodes_from(_plan)])

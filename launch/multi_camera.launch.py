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

"""Two cameras, two namespaced CANet nodes (cam_front and cam_rear by default).

    ros2 launch canet_ros multi_camera.launch.py \
        front_image_topic:=/front/image_raw rear_image_topic:=/rear/image_raw

Each camera includes segment.launch.py with its own namespace and image topic; the
remaining arguments (backbone, resolution, checkpoint, ...) apply to both.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from canet_ros.launch_config import (
    CAMERAS,
    PACKAGE,
    multi_camera_arguments,
    multi_camera_include_arguments,
)


def _camera(segment_launch, prefix):
    forwarded = {inner: LaunchConfiguration(outer)
                 for inner, outer in multi_camera_include_arguments(prefix).items()}
    # Scoped group: one camera's launch configurations must not leak into the other's.
    return GroupAction([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(segment_launch), launch_arguments=forwarded.items())])


def generate_launch_description():
    segment_launch = os.path.join(get_package_share_directory(PACKAGE), "launch",
                                  "segment.launch.py")
    return LaunchDescription(
        [DeclareLaunchArgument(arg.name, default_value=arg.default, description=arg.description)
         for arg in multi_camera_arguments()]
        + [_camera(segment_launch, prefix) for prefix, _, _ in CAMERAS]
    )

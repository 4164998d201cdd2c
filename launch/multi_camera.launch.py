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
        front_image_topic:=/front/image_raw rear_image_topic:=/rear/image_raw \
        rear_input_transport:=compressed

Per camera (front_*, rear_*): namespace, image_topic, input_transport. Every other
argument (backbone, checkpoint, resolution, publish_confidence, ...) applies to both.
``--show-args`` lists exactly these; any other name:=value stops the launch, naming it.
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription

from canet_ros.launch_config import PACKAGE
from canet_ros.launch_multi_camera import multi_camera_arguments, resolve_multi_camera_launch
from canet_ros.ros.launch_actions import (
    declare,
    environment_of,
    nodes_from,
    pushed_namespace_of,
    values_of,
)


def _plans(context):
    plans = resolve_multi_camera_launch(values_of(context, multi_camera_arguments()),
                                        get_package_share_directory(PACKAGE),
                                        environment_of(context),
                                        pushed_namespace=pushed_namespace_of(context))
    return [plan for _, plan in plans]


def generate_launch_description():
    return LaunchDescription(declare(multi_camera_arguments(), "multi_camera.launch.py")
                             + [nodes_from(_plans)])

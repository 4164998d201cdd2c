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

"""ROS 2 side of canet_ros: the segmentation node, its parameters, statistics and launch actions.

Only this subpackage imports rclpy, ROS message packages and launch. At import time
``segmentation``, ``label_info`` and ``log_forwarding`` (the package's Python log
records into the node's ROS log) import rclpy and messages (vision_msgs only when
called, as it is optional), ``launch_actions`` imports launch and launch_ros (only the
launch files import it). ``node`` (the console script) imports rclpy when it runs;
``params`` and ``stats`` stay plain Python so the launch helper and tests can use them
without ROS. Nothing here imports torch at module level: the engine is loaded only after
the parameters have been checked.
"""

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

"""Class metadata for subscribers: vision_msgs/LabelInfo built from the checkpoint's classes.

A label image says "3" where the model saw a road; LabelInfo tells a subscriber (an
rviz plugin, a mapping node, ``ros2 bag record``) that 3 means "Road". It is published
once, reliable and transient local (latched), so a subscriber that comes later still
gets it. vision_msgs is optional: without it the node runs and says so once.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

LABEL_INFO_TOPIC = "segmentation/label_info"
# The node labels every pixel with its most likely class: no confidence threshold applies.
NO_THRESHOLD = 0.0
LABEL_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
MISSING = ("vision_msgs is not installed: segmentation/label_info (the class names of the "
           "label ids) is not published; install ros-$ROS_DISTRO-vision-msgs to get it")


def class_names(class_set: Any) -> Tuple[str, ...]:
    """Return the names of a canet_ros.classes.ClassSet, in label id order."""
    # Read through its fields: test_ros_humble.py takes any ``.names`` attribute for the
    # rclpy API of that name, which Humble lacks.
    return tuple(dataclasses.asdict(class_set)["names"])


def label_info_type() -> Optional[Any]:
    """vision_msgs/LabelInfo, or None where vision_msgs is not installed."""
    try:
        from vision_msgs.msg import LabelInfo
    except ImportError:
        return None
    return LabelInfo


def label_info_message(msg_type: Any, class_names: Sequence[str], header: Any,
                       threshold: float = NO_THRESHOLD) -> Any:
    """Build LabelInfo with id i named ``class_names[i]``, as the label images number them."""
    from vision_msgs.msg import VisionClass

    return msg_type(header=header, threshold=float(threshold),
                    class_map=[VisionClass(class_id=index, class_name=str(name))
                               for index, name in enumerate(class_names)])

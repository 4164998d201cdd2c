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

"""Offline segmentation of ROS 1 / ROS 2 bags (``canet segment-bag``); needs no ROS.

See docs/segment_bag.md. Nothing here imports rclpy or sensor_msgs: rosbags reads and
writes the bags and provides the message types.
"""
from .distributed import RankInfo, find_bags, merge_reports, run_folder
from .errors import BagError
from .pipeline import BagJob, SegmentOptions, segment_bag
from .reader import InputBag, detect_format
from .sample import SAMPLE_BAG, SAMPLE_GT_TOPIC, SAMPLE_IMAGE_TOPIC
from .writer import OutputTopics, camera_namespace

__all__ = [
    "SAMPLE_BAG", "SAMPLE_GT_TOPIC", "SAMPLE_IMAGE_TOPIC", "BagError", "BagJob", "InputBag",
    "OutputTopics", "RankInfo", "SegmentOptions", "camera_namespace", "detect_format",
    "find_bags", "merge_reports", "run_folder", "segment_bag",
]

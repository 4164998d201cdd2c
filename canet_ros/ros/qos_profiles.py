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

"""The segmentation node's QoS: its camera subscription and its output publishers."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def input_qos(reliability: str) -> QoSProfile:
    """Depth 1 either way: reliability only decides whether the network may drop frames.

    A deeper reader queue would count a burst's frames, but under a camera faster than the
    executor takes messages it fills, and the node then segments frames a queue old
    (1080p at 30 Hz: 115 ms old at p50 instead of 20 ms). docs/ros.md says how a replay
    checks that every frame arrived.
    """
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else \
        ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=policy,
                      durability=DurabilityPolicy.VOLATILE)


# A reliable writer is matched by both reliable and best-effort readers (rviz, bag record).
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)

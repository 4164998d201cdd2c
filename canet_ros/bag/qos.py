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

"""The QoS each output topic is recorded with, so ``ros2 bag play`` offers what the node does.

rosbag2's player builds each publisher from the topic's ``offered_qos_profiles``; an empty
string gives its default offer (reliable, volatile, keep last 10), which would replay the
latched label_info as volatile: a transient-local subscriber (docs/ros.md) would get
nothing and a late volatile one would miss the single message.

The string is what Humble's rosbag2 writes for metadata version 5 (rosbag2_transport
qos.cpp, humble branch): a YAML list of profiles, the policies as integers in rmw's
numbering and the durations as ``sec``/``nsec``. Humble reads every key of a profile, so
all of them are written. Jazzy reads a version-5 string the same way (rosbag2_storage
qos.cpp: an integer ``history`` selects the integer form), and its MCAP plugin reads a
channel's ``offered_qos_profiles`` with that rule too. rosbags (our reader) accepts both.
bag/ must not import rclpy, so the node's profiles are restated here; the tests compare
them with the node's own rclpy objects.
"""
from __future__ import annotations

from collections.abc import Sequence

import yaml
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

# rmw's "use the default" duration (RMW_DURATION_UNSPECIFIED); what an rclpy QoSProfile
# holds for deadline, lifespan and liveliness lease unless a node sets them.
_UNSPECIFIED = QosTime(0, 0)


def _node_offer(durability: QosDurability) -> Qos:
    """Return a profile as the node builds it: reliable, keep last 1, the rest default."""
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=durability, deadline=_UNSPECIFIED, lifespan=_UNSPECIFIED,
               liveliness=QosLiveliness.SYSTEM_DEFAULT,
               liveliness_lease_duration=_UNSPECIFIED, avoid_ros_namespace_conventions=False)


# canet_ros/ros/label_info.py LABEL_INFO_QOS: latched, so late subscribers get it.
LABEL_INFO_OFFER = _node_offer(QosDurability.TRANSIENT_LOCAL)
# canet_ros/ros/qos_profiles.py OUTPUT_QOS. The player replaces history and depth by its own
# default (adapt_offer_to_recorded_offers -> default_history, Humble and Jazzy), so this
# replays exactly as an empty string would (reliable, volatile). It is recorded anyway so
# the bag states the node's offer, as a `ros2 bag record` of the node would, instead of
# leaving readers of the field (rosbags, Foxglove) with "unknown".
IMAGE_OUTPUT_OFFER = _node_offer(QosDurability.VOLATILE)


def qos_to_dict(qos: Qos) -> dict[str, object]:
    """Return a profile as rosbag2 serialises it below version 9, keys in Humble's order."""
    def duration(value: QosTime) -> dict[str, int]:
        return {"sec": int(value.sec), "nsec": int(value.nsec)}

    return {"history": qos.history.value, "depth": int(qos.depth),
            "reliability": qos.reliability.value, "durability": qos.durability.value,
            "deadline": duration(qos.deadline), "lifespan": duration(qos.lifespan),
            "liveliness": qos.liveliness.value,
            "liveliness_lease_duration": duration(qos.liveliness_lease_duration),
            "avoid_ros_namespace_conventions": bool(qos.avoid_ros_namespace_conventions)}


def offered_qos_string(profiles: Sequence[Qos]) -> str:
    """Return the ``offered_qos_profiles`` string (metadata v5, MCAP channel); '' for none."""
    if not profiles:
        return ""
    # Block style, like yaml-cpp's Dump that Humble uses; no trailing newline either.
    return yaml.safe_dump([qos_to_dict(p) for p in profiles], sort_keys=False,
                          default_flow_style=False).rstrip("\n")

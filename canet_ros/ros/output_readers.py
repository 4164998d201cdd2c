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

"""Readers of an output that DDS never matched: what in their QoS the outputs cannot give.

``ros2 topic info`` counts such a subscription, the node's publisher does not: the node
then reports its frames as idle (no matched subscribers) while a user sees a subscriber.
The outputs offer reliable, volatile, automatic liveliness and no deadline (OUTPUT_QOS);
a reader asking for more (transient local, as a latched-topic reader does; a deadline;
manual liveliness) is never served.
"""
from __future__ import annotations

from typing import Any, List, Optional

from rclpy.qos import DurabilityPolicy, LivelinessPolicy

# rmw reports "no deadline / lease" as 0 or as the largest duration it has.
_INFINITE_NS = 2 ** 62


def _finite(duration: Any) -> bool:
    ns = getattr(duration, "nanoseconds", 0)
    return 0 < ns < _INFINITE_NS


def mismatch(qos: Any) -> Optional[str]:
    """Say what a reader's ``qos`` asks that OUTPUT_QOS does not offer; None if it matches.

    Reliability never keeps one out: a reliable writer serves both kinds of reader.
    """
    wants = []
    if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
        wants.append("transient_local durability (the outputs are volatile)")
    if _finite(qos.deadline):
        wants.append("a deadline (the outputs promise none)")
    if qos.liveliness == LivelinessPolicy.MANUAL_BY_TOPIC:
        wants.append("manual_by_topic liveliness (the outputs assert automatic)")
    elif _finite(qos.liveliness_lease_duration):
        wants.append("a liveliness lease (the outputs promise none)")
    return " and ".join(wants) or None


def unmatched_readers(node: Any, publishers: List[Any]) -> List[str]:
    """Describe each reader of ``publishers``' topics whose QoS keeps it from matching.

    Read only where the graph lists more readers than the publisher matched, so a reader
    whose QoS this module misjudges is never named while everything matches.
    """
    found = []
    for publisher in publishers:
        topic = publisher.topic_name
        readers = node.get_subscriptions_info_by_topic(topic)
        if len(readers) <= publisher.get_subscription_count():
            continue
        for info in readers:
            why = mismatch(info.qos_profile)
            if why is not None:
                who = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                found.append(f"{who} subscribes to {topic} asking for {why}")
    return sorted(found)


def unmatched_warning(found: List[str]) -> str:
    return (f"{'; '.join(found)}: DDS never matches such a reader, so it gets nothing (the "
            "node counts frames as idle while nobody else listens); subscribe with volatile "
            "durability and no deadline or lease (rviz: Durability Policy Volatile)")

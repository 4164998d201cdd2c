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

"""Other nodes publishing on this node's output topics: their labels and ours interleave.

Two nodes told apart only by node name (not namespace) land on the same relative output
topics, a trap for users of nodes with private (~/) outputs; so do two nodes of the same
name and namespace (two `ros2 run`s differing only in image_topic).
"""
from __future__ import annotations

from typing import Any, List, Tuple


def shared_outputs(node: Any) -> Tuple[List[str], str]:
    """Return the other writers on ``node``'s label topic, and the warning that names them.

    The list is empty (and the text meaningless) when the topic is ``node``'s alone.
    """
    topic = node.resolve_topic_name("segmentation/labels")
    me = (node.get_name(), node.get_namespace())
    writers = node.get_publishers_info_by_topic(topic)
    others = sorted({f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in writers
                     if (i.node_name, i.node_namespace) != me})
    # This node has one writer there; more under its name are another process's node
    # of the same name.
    twins = sum((i.node_name, i.node_namespace) == me for i in writers) - 1
    if twins > 0:
        others.append(f"{twins} other node{'s' if twins > 1 else ''} named "
                      f"{node.get_fully_qualified_name()}")
    verb = "publish" if len(others) > 1 or twins > 1 else "publishes"
    return others, (f"{', '.join(others)} also {verb} on {topic}: their labels and ours "
                    "interleave there; give each camera's node its own namespace "
                    "(ros2 run / python -m: --ros-args -r __ns:=/cam_front; "
                    "segment.launch.py: namespace:=cam_front), not only its own node name")

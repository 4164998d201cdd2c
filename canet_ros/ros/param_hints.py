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

"""Hints for parameters given wrongly: a name that is no parameter, a value of the wrong type.

What rclpy says ("expecting type 'DOUBLE'") leaves the user to work out the fix.
"""
from __future__ import annotations

from typing import Any

# Names that are no parameter of any node, only launch arguments or remaps.
ROS_NAMES = {"namespace": "a namespace is not a parameter: --ros-args -r __ns:=/NAME, or "
                          "segment.launch.py's namespace:=NAME",
             "node_name": "a node name is not a parameter: --ros-args -r __node:=NAME"}


def type_hint(name: str, default: Any) -> str:
    """Return how to write a value of ``default``'s type for ``name`` ('' where obvious)."""
    # ROS reads -p overlay_alpha:=1 as an integer, which a double parameter refuses.
    if isinstance(default, float):
        return f"; write it with a decimal point ({name}:={default!r})"
    if isinstance(default, str):
        return f"; give it as a string (-p \"{name}:='...'\")"
    return ""

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

"""The ROS 2 Humble message types every bag reader, salvager and writer here shares.

A module of its own, below reader, salvage and writer, so none of them reaches into another
for it.
"""
from __future__ import annotations

from typing import Any

from rosbags.typesys import Stores, get_typestore

_HUMBLE = None


def humble_typestore() -> Any:
    """Return the ROS 2 Humble typestore, built once (it imports ~300 message classes)."""
    global _HUMBLE
    if _HUMBLE is None:
        _HUMBLE = get_typestore(Stores.ROS2_HUMBLE)
    return _HUMBLE

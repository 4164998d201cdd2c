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

"""Error types for problems with what the user gave (a file, an argument, a dataset).

This module imports nothing heavy, so the command line can name these types without
loading torch. ``canet`` reports any ``CanetError`` as one line and exit status 1.
"""
from __future__ import annotations

__all__ = ["BackboneWeightsError", "CanetError", "DatasetError"]


class CanetError(Exception):
    """A problem with the user's input; the message names the file or argument and the problem."""


class DatasetError(CanetError, RuntimeError):
    """A dataset that cannot be read; the message names the folder or file."""


class BackboneWeightsError(CanetError, RuntimeError):
    """ImageNet backbone weights were asked for but cannot be had; the message says why."""

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

"""Argparse types for values whose form argparse can check.

A malformed value is a usage error (status 2) with the option named, before any work
starts.
"""
from __future__ import annotations

import argparse
import re

# Shared with the training options (a --config file's values meet the same rules); they
# live on the training side so that it never imports the CLI.
from ..training.config_types import device, int_at_least, non_negative_int, path_text, positive_int

__all__ = ["checkpoint_spec", "device", "int_at_least", "non_negative_int", "path_text",
           "positive_int", "resolution", "width_x_height"]

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def width_x_height(text: str) -> tuple[int, int]:
    """Parse "WIDTHxHEIGHT" into (width, height), each at least 1."""
    match = _SIZE.match(text)
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 1920x1200)")
    return int(match.group(1)), int(match.group(2))


def resolution(text: str) -> str:
    """Return a network input size "WIDTHxHEIGHT", as text (the engine checks the limits)."""
    width_x_height(text)
    return text.strip()


def checkpoint_spec(text: str) -> str:
    """Return a --checkpoint value: a file or 'default', never empty.

    An unset shell variable (``--checkpoint "$CKPT"``) must not run the bundled model in
    place of the file the script meant.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; give a checkpoint file or 'default' (the "
                                         "bundled model)")
    return text

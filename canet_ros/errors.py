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

import reprlib
from typing import Any, Sequence

__all__ = ["BackboneWeightsError", "CanetError", "DatasetError", "ImageCodecError", "brief",
           "brief_items"]

BRIEF_WIDTH = 80  # characters of a quoted value in a message

# A few items of a few levels: a YAML alias bomb of 400 bytes expands to millions of
# items, and its full repr (tens of MB) was the whole error message.
_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


def brief(value: Any, width: int = BRIEF_WIDTH) -> str:
    """``repr(value)`` on one line of at most ``width`` characters, whatever its size.

    Only the part shown is looked at, so a value that is huge once expanded costs little.
    """
    try:
        text = _REPR.repr(value)
        if "..." not in text:  # nothing left out: the plain repr, in the value's own key order
            text = repr(value)
    except Exception:  # noqa: BLE001 -- a failing repr must not hide the problem itself
        text = f"<{type(value).__name__}>"
    text = " ".join(text.splitlines())
    return text if len(text) <= width else text[:width - 3] + "..."


def brief_items(values: Sequence[Any], limit: int = 5) -> str:
    """Quote the first ``limit`` of ``values`` with ``brief``, then say how many there are."""
    shown = ", ".join(brief(v, BRIEF_WIDTH // 2) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


class CanetError(Exception):
    """A problem with the user's input; the message names the file or argument and the problem."""


class DatasetError(CanetError, RuntimeError):
    """A dataset that cannot be read; the message names the folder or file."""


class BackboneWeightsError(CanetError, RuntimeError):
    """ImageNet backbone weights were asked for but cannot be had; the message says why."""


class ImageCodecError(ValueError):
    """Raised for every malformed or unsupported image message or array (canet_ros.image_codec)."""

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

"""A dataset error that lists every problem found, and short quotes of what was wrong."""
from __future__ import annotations

import reprlib
from typing import Any, List, Sequence

from ..errors import DatasetError

MAX_LISTED = 50  # per kind of problem; the count of the rest is still given
BRIEF_WIDTH = 80  # characters of a quoted value in a message

# A few items of a few levels: a YAML alias bomb of 400 bytes expands to millions of
# items, and its full repr (tens of MB) was the whole error message.
_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


class DatasetProblems(DatasetError):
    """Everything wrong with a dataset folder; ``problems`` holds one line per problem."""

    def __init__(self, where: str, problems: Sequence[str]):
        self.where = where
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{where}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head + "".join(f"\n  - {p}" for p in self.problems))


def capped(lines: List[str], what: str) -> List[str]:
    """At most MAX_LISTED lines of one kind, then one line counting the rest."""
    if len(lines) <= MAX_LISTED:
        return lines
    return lines[:MAX_LISTED] + [f"... and {len(lines) - MAX_LISTED} more {what}"]


def brief(value: Any, width: int = BRIEF_WIDTH) -> str:
    """``repr(value)`` on one line of at most ``width`` characters, whatever its size.

    Only the part shown is looked at, so a value that is huge once expanded costs little.
    """
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 -- a failing repr must not hide the problem itself
        text = f"<{type(value).__name__}>"
    text = " ".join(text.splitlines())
    return text if len(text) <= width else text[:width - 3] + "..."


def brief_items(values: Sequence[Any], limit: int = 5) -> str:
    """Quote the first ``limit`` of ``values`` with ``brief``, then say how many there are."""
    shown = ", ".join(brief(v, BRIEF_WIDTH // 2) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")

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

from typing import List, Sequence

from ..errors import BRIEF_WIDTH, DatasetError, brief, brief_items  # noqa: F401 (re-exported)

MAX_LISTED = 50  # per kind of problem; the count of the rest is still given


class MoreLine(str):
    """The line standing for ``hidden`` problems that :func:`capped` did not list."""

    hidden: int = 0


class DatasetProblems(DatasetError):
    """Everything wrong with a dataset folder; ``problems`` holds one line per problem.

    A :class:`MoreLine` stands for the problems it counts: the header gives them all.
    """

    def __init__(self, where: str, problems: Sequence[str]):
        self.where = where
        self.problems = list(problems)
        count = sum(p.hidden if isinstance(p, MoreLine) else 1 for p in self.problems)
        head = f"{where}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head + "".join(f"\n  - {p}" for p in self.problems))


def capped(lines: List[str], what: str) -> List[str]:
    """At most MAX_LISTED lines of one kind, then one line counting the rest."""
    if len(lines) <= MAX_LISTED:
        return lines
    more = MoreLine(f"... and {len(lines) - MAX_LISTED} more {what}")
    more.hidden = len(lines) - MAX_LISTED
    return lines[:MAX_LISTED] + [more]


def no_labels_text(root: object, split: str, count: int, ignore_index: int,
                   filters: str = "") -> str:
    """Say that a split has no labelled pixel: its loss and mIoU would be NaN."""
    return (f"{root}: the {split} split{filters} has no labelled pixel: every pixel of its "
            f"{count} mask{'s' if count != 1 else ''} is the ignore id {ignore_index} "
            f"(label the frames, or check ignore_index in classes.yaml)")

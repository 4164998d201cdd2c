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

"""docs/ros.md's Parameters and Launch files tables name exactly what the code declares.

The tables are written by hand; a parameter added to ``ros/params.py`` SPECS (or a launch
argument to ``launch_config.SEGMENT_ARGUMENTS``, or a backbone to BACKBONE_CHOICES) that
the docs do not list, or a row for one that is gone, fails here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

import pytest

from canet_ros.launch_config import SEGMENT_ARGUMENTS
from canet_ros.launch_multi_camera import CAMERAS, PER_CAMERA
from canet_ros.ros.params import BACKBONE_CHOICES, SPECS

ROS_MD = Path(__file__).resolve().parents[1] / "docs" / "ros.md"


def section(text: str, heading: str) -> str:
    """Return the text from ``heading`` (a whole line) to the next heading of its level."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n") + 1
    ends = [m.start() for m in re.finditer(rf"^{level} ", text[start + 1:], re.M)]
    return text[start:start + 1 + ends[0]] if ends else text[start:]


def table(text: str, header: str) -> Dict[str, str]:
    """Return the table under the ``header`` line as {first cell without backticks: row}."""
    lines = text[text.index(header + "\n"):].splitlines()[2:]  # past the |---| line
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        name = line.split("|")[1].strip().strip("`")
        assert name not in rows, f"{header}: {name} has two rows"
        rows[name] = line
    return rows


@pytest.fixture(scope="module")
def docs() -> str:
    return ROS_MD.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def parameter_rows(docs) -> Dict[str, str]:
    return table(section(docs, "## Parameters"), "| name | default | |")


@pytest.fixture(scope="module")
def argument_rows(docs) -> Dict[str, str]:
    return table(section(docs, "## Launch files"), "| argument | meaning |")


def test_parameter_table_lists_every_parameter_and_no_other(parameter_rows):
    assert list(parameter_rows) == [spec.name for spec in SPECS]  # same names, same order


def test_parameter_table_shows_each_default(parameter_rows):
    for spec in SPECS:
        shown = parameter_rows[spec.name].split("|")[2].strip()
        if isinstance(spec.default, bool):
            expected = f"`{str(spec.default).lower()}`"  # as YAML writes it
        elif spec.default == "":
            expected = '`""`'
        else:
            expected = f"`{spec.default}`"
        assert shown == expected, spec.name


def test_parameter_table_names_every_choice(parameter_rows):
    for spec in SPECS:
        for choice in spec.choices:
            assert f"`{choice}`" in parameter_rows[spec.name], (spec.name, choice)


def test_launch_table_lists_every_argument_and_no_other(argument_rows):
    assert list(argument_rows) == [arg.name for arg in SEGMENT_ARGUMENTS]


def test_backbone_rows_name_every_backbone_and_no_other(parameter_rows, argument_rows):
    for row in (parameter_rows["backbone"], argument_rows["backbone"]):
        cell = row.split("|")[-2]  # the description: the backbones before the first ';'
        named = set(re.findall(r"`([a-z0-9]+)`", cell.split(";")[0]))
        assert named == set(BACKBONE_CHOICES), row


def test_multi_camera_paragraph_names_its_per_camera_arguments(docs):
    start = docs.index("`launch/multi_camera.launch.py` starts two nodes")
    paragraph = docs[start:docs.index("\n\n", start)]
    for prefix, namespace in CAMERAS:
        assert f"`{prefix}_`" in paragraph and f"`{namespace}`" in paragraph
    for name in PER_CAMERA:
        assert f"`{name}`" in paragraph, name

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

"""ament_pep257 (docstring conventions) over the package (ROS 2 machines only).

ament's convention, except that this project puts a multi-line docstring's summary
on the first line (PEP 257's own layout): D212 is checked and D213 is not.
"""
from pathlib import Path

import pytest

main = pytest.importorskip(
    "ament_pep257.main",
    reason="ament_pep257 is not installed (no ROS 2 here); colcon test runs it").main

PACKAGE = Path(__file__).resolve().parents[1]
# Copies of the sources that builds leave in the package folder (setuptools, colcon run
# from here), and the test venv: not the package's code.
GENERATED = [str(PACKAGE / d) for d in ("build", "install", "log", ".venv")]
IGNORE = ["D100", "D101", "D102", "D103", "D104", "D105", "D106", "D107", "D203", "D213",
          "D404"]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=[str(PACKAGE), "--ignore", *IGNORE, "--exclude", *GENERATED])
    assert rc == 0, "Found code style errors / warnings"

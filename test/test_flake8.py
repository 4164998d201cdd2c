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

"""ament_flake8 over the package (ROS 2 machines only).

The project's own style (ruff: line length 100, double quotes, isort-ordered imports)
differs from ament's defaults, so the run uses ament's configuration with those three
points adjusted; everything else ament checks is kept.
"""
from pathlib import Path

import pytest

main_with_errors = pytest.importorskip(
    "ament_flake8.main",
    reason="ament_flake8 is not installed (no ROS 2 here); colcon test runs it",
).main_with_errors

PACKAGE = Path(__file__).resolve().parents[1]
# Copies of the sources that builds leave in the package folder (setuptools, colcon run
# from here), and the test venv: not the package's code.
GENERATED = [str(PACKAGE / d) for d in ("build", "install", "log", ".venv")]
# ament's list, plus what ruff's formatting rules own here: Q0xx (quotes), I1xx/I2xx
# (import order), C812 (trailing commas) and CNL100 (blank line after "class"), where
# those plugins are installed.
CONFIG = """[flake8]
extend-ignore = B902,C812,C816,CNL100,D100,D101,D102,D103,D104,D105,D106,D107,D203,
    D212,D404,I100,I101,I201,I202,Q000,Q001,Q002,Q003,W503,W504
import-order-style = google
max-line-length = 100
show-source = true
statistics = true
"""


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(tmp_path):
    config = tmp_path / "flake8.ini"
    config.write_text(CONFIG)
    rc, errors = main_with_errors(argv=["--config", str(config), str(PACKAGE),
                                        "--exclude", *GENERATED])
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)

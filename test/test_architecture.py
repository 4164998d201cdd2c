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

"""Package structure rules: ROS stays in canet_ros/ros, the linter is clean."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "cv_bridge",
               "builtin_interfaces", "rcl_interfaces", "launch", "launch_ros")


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_ros_imports_only_in_ros_subpackage():
    offenders = []
    for path in (ROOT / "canet_ros").rglob("*.py"):
        if "ros" in path.relative_to(ROOT / "canet_ros").parts[:1]:
            continue
        bad = sorted(set(_imports(path)) & set(ROS_MODULES))
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {bad}")
    assert offenders == []


def test_models_and_inference_never_import_rclpy():
    """Imported in a fresh interpreter, where no stand-in is on the path either."""
    modules = ("canet_ros.models", "canet_ros.checkpoint", "canet_ros.inference",
               "canet_ros.image_codec", "canet_ros.metrics")
    code = "\n".join([
        "import sys",
        *(f"import {m}" for m in modules),
        f"bad = [m for m in sys.modules if m.split('.')[0] in {ROS_MODULES!r}]",
        "assert not bad, bad",
    ])
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed: pip install -e .[test]")
    result = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr

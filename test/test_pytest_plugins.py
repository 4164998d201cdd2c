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

"""The README's test command on a ROS host: launch_testing's pytest plugins cannot break it.

Wherever launch_testing is installed (any sourced ROS 2 host) its plugins are loaded by
every pytest run. Under pytest 9 they fail to register, which ended every pytest command;
under 7.4 a module-level skip in one file ended collection of the whole directory. Stand-in
plugins that fail the same way show the first; the real launch_testing shows the second.
Each case also runs without pyproject.toml's addopts, to show it fails there.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A hook implementation pytest's hook specification does not have, as launch_testing
# 3.4.3 declares under pytest 9, and a hook nothing declares, as launch_testing_ros does.
BROKEN_PLUGINS = {
    "launch_testing": "def pytest_pycollect_makemodule(module_path, parent, fspath_of_old):\n"
                      "    return None\n",
    "launch_ros": "def pytest_launch_collect_makemodule(path, parent, entrypoint):\n"
                  "    return None\n",
}


def run_pytest(args, env=None, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def with_path(folder):
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(folder)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def test_plugins_that_cannot_register_do_not_end_the_run(tmp_path):
    entry_points = ["[pytest11]"]
    for name, source in BROKEN_PLUGINS.items():
        (tmp_path / f"broken_{name}.py").write_text(source)
        entry_points.append(f"{name} = broken_{name}")
    info = tmp_path / "broken_ros_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-ros-plugins\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("\n".join(entry_points) + "\n")
    env = with_path(tmp_path)
    result = run_pytest(["test/test_progress.py"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    unprotected = run_pytest(["-o", "addopts=", "test/test_progress.py"], env)
    assert unprotected.returncode != 0 and "PluginValidationError" in (
        unprotected.stdout + unprotected.stderr)


def test_a_module_level_skip_leaves_the_other_files_collected(tmp_path):
    pytest.importorskip("launch_testing", reason="launch_testing is not installed")
    (tmp_path / "test_skipped.py").write_text(
        "import pytest\npytest.skip('not here', allow_module_level=True)\n")
    (tmp_path / "test_other.py").write_text("def test_runs():\n    pass\n")
    config = ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)]
    result = run_pytest(config, cwd=tmp_path)
    assert result.returncode == 0 and "1 passed, 1 skipped" in result.stdout, result.stdout
    unprotected = run_pytest(["-o", "addopts=", *config], cwd=tmp_path)
    assert "1 passed" not in unprotected.stdout, unprotected.stdout


def test_the_launch_test_skips_with_its_reason_where_launch_pytest_cannot_collect(tmp_path):
    """As launch_pytest 3.4.3 under pytest >= 8.4: its fixtures lack what its hook reads."""
    for name, body in (("launch", ""), ("launch_ros", ""),
                       ("launch_pytest", "def fixture(function):\n    return object()\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body)
    env = dict(with_path(tmp_path), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    result = run_pytest(["-rs", "test/test_segment_launch.py"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "error" not in result.stdout.lower(), result.stdout
    assert "launch_pytest cannot collect launch tests under pytest" in result.stdout

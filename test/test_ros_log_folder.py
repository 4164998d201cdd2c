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

"""A test run's ROS log files go to its temporary folder, never the user's ~/.ros/log.

rcl writes a log file at every rclpy.init (this process's and each node process's),
launch a folder per launch service; by default both go to ~/.ros/log.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ASK_RCL = "import rclpy.logging; print(rclpy.logging.get_logging_directory())"


def _inside(folder: str, base: Path) -> bool:
    return Path(folder).resolve().is_relative_to(base.resolve())


def test_rclpy_here_and_in_node_processes_logs_to_the_run_s_temp_folder(
        ros, tmp_path_factory):
    import rclpy.logging
    from ros_processes import node_env

    base = tmp_path_factory.getbasetemp()
    here = rclpy.logging.get_logging_directory()
    child = subprocess.run([sys.executable, "-c", ASK_RCL], env=node_env(), text=True,
                           capture_output=True, timeout=60, check=True).stdout.strip()
    assert _inside(here, base), here
    assert _inside(child, base), child


def test_launch_logs_to_the_run_s_temp_folder(ros_isolation, tmp_path_factory):
    launch_logging = pytest.importorskip("launch.logging", reason="launch is not installed")
    # Where launch_config.log_dir would make its folder, without making one.
    folder = launch_logging._get_logging_directory()
    assert _inside(folder, tmp_path_factory.getbasetemp()), folder

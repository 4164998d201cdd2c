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

"""Run the node (its console script) and the test camera as real processes.

Every process inherits the run's ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE
(conftest.py). The node gets the Fast DDS environment its launch file would give it
(canet_ros.launch_config.dds_environment); the camera gets the same profile, as
docs/ros.md tells camera drivers to use.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest
from ros_helpers import CAMVID_ROOT, REPO

# What must never appear in a node's output after a clean start and a signal.
PROBLEMS = ("[ERROR]", "[FATAL]", "Traceback", "terminate called", "Segmentation fault",
            "Failed to publish", "Aborted", "core dumped")


def node_executable() -> str:
    script = Path(sys.executable).with_name("segmentation_node")
    found = str(script) if script.exists() else shutil.which("segmentation_node")
    if not found:
        pytest.skip("the segmentation_node console script is not installed (pip install -e .)")
    return found


def node_env(dds: bool = True) -> dict:
    from canet_ros.launch_config import dds_environment
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if dds:
        env.update(dds_environment("", REPO, os.environ))
    return env


def camera_env(dds: bool = True) -> dict:
    from canet_ros.launch_config import DDS_PROFILE, FASTDDS_PROFILE_VARIABLES, profile_variables
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for variable in FASTDDS_PROFILE_VARIABLES:
        env.pop(variable, None)
    if dds:  # the variable(s) docs/ros.md tells a camera driver on this distro to set
        env.update(dict.fromkeys(profile_variables(os.environ),
                                 str(REPO / "config" / DDS_PROFILE)))
    return env


class RosProcess:
    """A child process; its merged stdout/stderr is collected line by line with times."""

    started: List[RosProcess] = []  # every one, so the run can stop leftovers (conftest)

    def __init__(self, argv: List[str], env: dict, name: str):
        RosProcess.started.append(self)
        self.name = name
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=REPO, text=True,
                                     errors="replace")
        self.lines: List[tuple] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, words: str, timeout: float) -> Optional[float]:
        """Seconds from process start to the first line containing ``words``; None if none."""
        def found():
            return next((t for t, line in self.lines if words in line), None)
        deadline = time.monotonic() + timeout
        with self._cond:
            # In slices: the pipe may close a moment before the process can be reaped.
            while found() is None and self.proc.poll() is None and time.monotonic() < deadline:
                self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            return found()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def problems(self) -> List[str]:
        with self._cond:
            return [line for _, line in self.lines if any(p in line for p in PROBLEMS)]

    def send(self, signum: int) -> float:
        os.kill(self.proc.pid, signum)
        return time.monotonic()

    def wait(self, timeout: float) -> Optional[int]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(10)  # the rest of its output
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            if self.wait(15) is None:
                self.proc.kill()
                self.proc.wait()


def start_node(*ros_args: str, namespace: str = "", dds: bool = True,
               name: str = "node") -> RosProcess:
    """segmentation_node --ros-args [-r __ns:=NS] ROS_ARGS..., as ``ros2 run`` starts it."""
    argv = [node_executable(), "--ros-args"]
    if namespace:
        argv += ["-r", f"__ns:={namespace}"]
    return RosProcess(argv + list(ros_args), node_env(dds), name)


def start_camera(topic: str, size: str, rate: float, count: int = 0, transport: str = "raw",
                 pad: int = 0, prefix: str = "f", camvid: bool = True,
                 dds: bool = True) -> RosProcess:
    folder = CAMVID_ROOT / "val"
    argv = [sys.executable, str(REPO / "test" / "ros_camera.py"), "--topic", topic,
            "--size", size, "--rate", str(rate), "--count", str(count), "--pad", str(pad),
            "--transport", transport, "--prefix", prefix, "--wait", "600"]
    if camvid and folder.is_dir():
        argv += ["--frames", str(folder)]
    return RosProcess(argv, camera_env(dds), f"camera {topic}")


FIGURES: List[str] = []  # printed at the end of the run by conftest.py


def report(label: str, value: object, unit: str = "s") -> None:
    """Keep a measured figure for the run's summary; figures are never asserted."""
    text = f"{value:.2f} {unit}" if isinstance(value, float) else f"{value} {unit}".strip()
    FIGURES.append(f"{label}: {text}")

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

"""Which variable hands the large-image Fast DDS profile to each ROS distribution.

The rules, from upstream: Fast DDS 2.x (Humble, Iron, Jazzy) reads only
FASTRTPS_DEFAULT_PROFILES_FILE (ros2/ros2_documentation#6098: the FASTDDS_ name "is not
supported in jazzy or humble"); Fast DDS 3.x (Kilted, Rolling) reads
FASTDDS_DEFAULT_PROFILES_FILE, and rmw_fastrtps 9.3+ still reads the old name itself but
logs a deprecation WARN for it (ros2/rmw_fastrtps#806). The process tests check both on
the rclpy installed here: the profile's 32 MB shared-memory segment is mapped (so Fast
DDS read the file) and no deprecation line is logged.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata

import pytest
from ros_helpers import REPO

import canet_ros.launch_config as lc
import canet_ros.launch_multi_camera as mc

OLD = "FASTRTPS_DEFAULT_PROFILES_FILE"
NEW = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE = str((REPO / "config" / lc.DDS_PROFILE).resolve())


@pytest.mark.parametrize("distro, expected", [
    ("humble", {OLD}), ("iron", {OLD}), ("jazzy", {OLD}), ("foxy", {OLD}),
    (" Jazzy\n", {OLD}),  # as a hand-written export might spell it
    ("kilted", {NEW}), ("rolling", {NEW}),
    ("lyrical", {NEW}), ("zesty", {NEW}),  # later distros keep Fast DDS 3's name
    ("", {OLD, NEW}),  # set but empty says nothing
])
def test_the_profile_goes_in_the_variable_the_distro_reads(distro, expected):
    environment = lc.dds_environment("", REPO, {"ROS_DISTRO": distro})
    assert environment == dict.fromkeys(expected, PROFILE)


def test_without_ros_distro_both_variables_are_set():
    # Nothing tells the Fast DDS version: each one ignores the other's variable.
    assert lc.dds_environment("", REPO, {}) == {OLD: PROFILE, NEW: PROFILE}


def test_a_profile_the_user_chose_is_kept_on_every_distro(tmp_path):
    own = tmp_path / "mine.xml"
    own.write_text("<profiles/>")
    assert lc.dds_environment(str(own), REPO, {"ROS_DISTRO": "kilted"}) == {NEW: str(own)}
    for distro in ("jazzy", "kilted"):
        for variable in (OLD, NEW):  # the old name still works on Kilted, with a WARN
            environ = {"ROS_DISTRO": distro, variable: "/etc/mine.xml"}
            assert lc.dds_environment("", REPO, environ) == {}, environ


def test_the_launch_plans_follow_the_distro():
    kilted = {"ROS_DISTRO": "kilted"}
    plan = lc.resolve_segment_launch({}, REPO, kilted)
    assert plan.environment == {NEW: PROFILE}
    cameras = {f"{prefix}_namespace": namespace for prefix, namespace in mc.CAMERAS}
    plans = mc.resolve_multi_camera_launch(cameras, REPO, {"ROS_DISTRO": "humble"})
    assert [plan.environment for _, plan in plans] == [{OLD: PROFILE}] * len(mc.CAMERAS)


def test_the_test_camera_gets_the_variable_of_the_distro(monkeypatch):
    from ros_processes import camera_env
    monkeypatch.setenv(OLD, "/etc/someone_elses.xml")  # replaced, as before
    monkeypatch.setenv("ROS_DISTRO", "kilted")
    env = camera_env()
    assert (env.get(OLD), env.get(NEW)) == (None, str(REPO / "config" / lc.DDS_PROFILE))
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    env = camera_env()
    assert (env.get(OLD), env.get(NEW)) == (str(REPO / "config" / lc.DDS_PROFILE), None)


# -- the installed rclpy, in a process of its own ------------------------------------------
# Creates a participant, then reports the largest shared-memory segment it mapped: Fast DDS
# maps its own segment at the size its transport gives (512 KB by default).
PROBE = """
import rclpy
rclpy.init()
node = rclpy.create_node("dds_profile_probe")
sizes = {}
with open("/proc/self/maps") as maps:
    for line in maps:
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("/dev/shm/"):
            low, high = (int(x, 16) for x in fields[0].split("-"))
            sizes[fields[5]] = sizes.get(fields[5], 0) + high - low
print("LARGEST_SHM", max(sizes.values(), default=0), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def _installed_distro() -> str:
    """ROS_DISTRO where ROS is sourced; for the pip wheels, a distro of their Fast DDS."""
    if os.environ.get("ROS_DISTRO", "").strip():
        return os.environ["ROS_DISTRO"].strip()
    for wheel, distro in (("ros-fastdds", "kilted"), ("ros-fastrtps", "jazzy")):
        try:
            metadata.version(wheel)
        except metadata.PackageNotFoundError:
            continue
        return distro
    pytest.skip("no ROS_DISTRO and no Fast DDS wheel: cannot tell the Fast DDS version")


def _segment_size() -> int:
    root = ET.parse(REPO / "config" / lc.DDS_PROFILE).getroot()
    return int(next(e.text for e in root.iter() if e.tag.endswith("segment_size")))


def _probe(env: dict) -> tuple:
    """(largest shared-memory mapping in bytes, the probe's output) for ``env``."""
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    sizes = [line.split()[1] for line in done.stdout.splitlines()
             if line.startswith("LARGEST_SHM")]
    return int(sizes[0]), output


@pytest.fixture(scope="module")
def ros_env(ros_isolation):
    """Give this run's ROS environment on Fast DDS, without any Fast DDS profile."""
    pytest.importorskip("rclpy", reason="rclpy is not installed (tools/bootstrap.sh)")
    env = {k: v for k, v in os.environ.items() if k not in lc.FASTDDS_PROFILE_VARIABLES}
    env.update(RMW_IMPLEMENTATION="rmw_fastrtps_cpp", ROS_DISTRO=_installed_distro())
    return env


def test_the_installed_fast_dds_applies_the_profile_without_a_deprecation_warning(ros_env):
    segment = _segment_size()
    largest, output = _probe(ros_env)
    assert largest < segment, "Fast DDS's default segment should be smaller than the profile's"
    env = dict(ros_env, **lc.dds_environment("", REPO, ros_env))
    largest, output = _probe(env)
    assert largest >= segment, (ros_env["ROS_DISTRO"], output)
    assert "deprecated" not in output and "[WARN]" not in output, output


def test_without_ros_distro_the_profile_still_applies(ros_env):
    env = {k: v for k, v in ros_env.items() if k != "ROS_DISTRO"}
    env.update(lc.dds_environment("", REPO, env))
    largest, output = _probe(env)
    assert largest >= _segment_size(), output

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

"""Our launch files run in this process as ros2launch runs them, with node start recorded."""
from pathlib import Path
from typing import Any, List

REPO = Path(__file__).resolve().parents[1]


def record_started_plans(tmp_path: Path, monkeypatch: Any) -> List[Any]:
    """Return the list the plans of the nodes a launch would start go to.

    canet_ros's share directory is the repository (no colcon workspace), and no node runs.
    """
    from launch.actions import LogInfo

    import canet_ros.ros.launch_actions as actions
    share = tmp_path / "prefix" / "share"
    (share / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (share / "ament_index" / "resource_index" / "packages" / "canet_ros").touch()
    (share / "canet_ros").symlink_to(REPO)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(share.parent))
    for name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE",
                 "RMW_IMPLEMENTATION"):
        monkeypatch.delenv(name, raising=False)
    plans: List[Any] = []
    monkeypatch.setattr(actions, "segmentation_node",
                        lambda plan: plans.append(plan) or LogInfo(msg="node"))
    return plans

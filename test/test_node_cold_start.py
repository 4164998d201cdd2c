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

"""A node's first start (no cached export) stays as light as a cached one.

It used to import torch to export the model and keep it mapped for its whole life: about
1.2 GB of memory instead of 0.43 GB on a robot after every install or new checkpoint.
"""
from pathlib import Path

import pytest

START_TIMEOUT_S = 300


def _maps_torch(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return any("libtorch" in line for line in maps.splitlines())


@pytest.mark.usefixtures("ros")
def test_a_first_start_exports_in_a_child_and_never_maps_torch(tmp_path, monkeypatch):
    from ros_processes import start_node
    cache = tmp_path / "empty_cache"
    monkeypatch.setenv("CANET_ROS_CACHE", str(cache))
    node = start_node("-p", "resolution:=128x96", "-p", "device:=cpu",
                      "-p", "precision:=fp32", name="cold start")
    try:
        ready = node.wait_line("ready:", START_TIMEOUT_S)
        assert ready is not None, node.output
        assert "exporting it for the CPU runtime" in node.output, node.output
        assert not _maps_torch(node.proc.pid), "torch stays mapped after the first start"
        assert list(cache.rglob("*.onnx")), "the child filled the cache"
    finally:
        node.stop()

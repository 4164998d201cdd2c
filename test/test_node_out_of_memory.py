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


"""Out of memory in the node: one FATAL (or ERROR) line saying so, not a traceback.

Under a memory limit (systemd's MemoryMax/LimitAS, docker's --ulimit as=) a first start's
``import torch`` fails as "ImportError: libtorch_cpu.so: failed to map segment from shared
object", which the node let through as a traceback; a MemoryError the same.
"""
import pytest
from ros_helpers import image_msg, synthetic_frame

MAP_FAILED = "libtorch_cpu.so: failed to map segment from shared object"


def _start(rig, error):
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode

    def factory(*args, **kwargs):
        raise error

    return SegmentationNode("oom_node", engine_factory=factory, parameter_overrides=[
        Parameter("checkpoint", value=rig.checkpoint), Parameter("device", value="cpu")])


@pytest.mark.parametrize("error", [ImportError(MAP_FAILED), MemoryError(),
                                   OSError(12, "Cannot allocate memory")])
def test_out_of_memory_while_loading_is_a_startup_error_saying_so(rig, error, monkeypatch):
    from canet_ros import errors

    monkeypatch.setattr(errors, "_address_space_limited", lambda: True)  # as under ulimit -v
    from canet_ros.ros.segmentation import StartupError

    with pytest.raises(StartupError) as raised:
        _start(rig, error)
    message = str(raised.value)
    assert "out of memory" in message and "memory limit" in message
    # A smaller input does not make a library fit: only where memory ran out for data.
    assert ("resolution parameter" in message) == (not isinstance(error, ImportError))
    assert raised.value.__cause__ is error


def test_another_import_error_while_loading_is_not_called_out_of_memory(rig):
    with pytest.raises(ImportError, match="No module named 'nothing_here'"):
        _start(rig, ImportError("No module named 'nothing_here'"))


class _OutOfMemory:
    """An engine whose first inference runs out of memory, as a camera-size frame can."""

    def __init__(self, engine):
        self._engine, self.calls = engine, 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 4294967296 bytes")
        return self._engine.infer(*args, **kwargs)


def test_a_frame_that_runs_out_of_memory_is_an_error_line_saying_so(rig):
    from rcl_interfaces.msg import Log
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode

    node = SegmentationNode("oom_frame", engine_factory=lambda *a, **k: _OutOfMemory(
        rig.engine(*a, **k)), parameter_overrides=[
        Parameter("checkpoint", value=rig.checkpoint), Parameter("device", value="cpu"),
        Parameter("precision", value="fp32"), Parameter("stats_period", value=60.0)])
    rig.nodes.append(node)
    rig.executor.add_node(node)
    rosout = rig.probe.rosout()
    got = rig.listen(node, "labels")
    rig.deliver(node, image_msg(synthetic_frame(), frame_id="first"))
    assert rig.spin_until(lambda: node.frame_stats.totals()["failed"] >= 1)
    assert rig.spin_until(lambda: any("frame dropped" in m.msg for m in rosout))
    errors = [m.msg for m in rosout if m.level == Log.ERROR and "frame dropped" in m.msg]
    assert "out of memory" in errors[0] and "resolution parameter" in errors[0]
    rig.deliver(node, image_msg(synthetic_frame(seed=1), frame_id="second"))
    assert rig.wait_for(got)["labels"].header.frame_id == "second"  # the node goes on

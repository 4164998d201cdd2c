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

"""The package's Python log records reach the node's ROS log, once, at their severity.

The engine logs through Python's ``logging`` (``canet_ros.inference``): which precision
``auto`` took, how to make the int8 graph, warnings. In-process on real rclpy (as
test_node.py) the lines are read from /rosout; the console script's own output is read
from its process. The int8 hint is the real one: the CPU is made to look like one with
int8 but no bf16, with the int8 graph not made yet.
"""
import logging
import signal
import sys
import time

import pytest
from ros_helpers import Rig
from ros_processes import RosProcess, node_env

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("onnxruntime")

HINT = "waits for its calibrated graph: start once with precision int8"
NUMBA_PROBLEM = "numba is installed but does not import (log forwarding test)"


def int8_waits_here() -> None:
    from canet_ros.inference import cpu_runners
    if cpu_runners.runtime_for("int8") != "openvino":
        pytest.skip("auto takes int8 only on OpenVINO with onnxruntime and onnx installed")


def start(rig: Rig, name: str, engine_factory=None, **params):
    """Start a SegmentationNode named ``name`` in the rig (closed by it)."""
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode
    values = {"checkpoint": rig.checkpoint, "device": "cpu", "precision": "fp32",
              "stats_period": 60.0, **params}
    node = SegmentationNode(name, parameter_overrides=[Parameter(k, value=v)
                                                       for k, v in values.items()],
                            engine_factory=engine_factory or rig.engine)
    rig.nodes.append(node)
    rig.executor.add_node(node)
    return node


def stop(rig: Rig, node) -> None:
    rig.executor.remove_node(node)
    rig.nodes.remove(node)
    node.destroy_node()


def _fresh_engine(*args, **kwargs):
    from canet_ros.inference import SegmentationEngine
    return SegmentationEngine(*args, **kwargs)


def rosout(rig: Rig) -> list:
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    # Transient local as /rosout's writers are: lines a node logs while it starts, before
    # the probe has matched it, still arrive.
    return rig.probe.listen("/rosout", Log, QoSProfile(
        depth=1000, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))


def logged(rig: Rig, lines: list, words: str, settle: float = 1.0) -> list:
    """Return the /rosout lines with ``words``, after waiting for one and then for copies."""
    rig.spin_until(lambda: any(words in m.msg for m in lines), timeout=30)
    end = time.monotonic() + settle
    rig.spin_until(lambda: time.monotonic() > end)
    return [m for m in lines if words in m.msg]


def test_the_int8_hint_reaches_the_ros_log_once(rig, monkeypatch, caplog):
    from rcl_interfaces.msg import Log

    from canet_ros.inference import cpu_features, cpu_runners
    int8_waits_here()
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    monkeypatch.setattr(cpu_runners, "_int8_ready", lambda graph: False)
    caplog.set_level(logging.INFO)  # where records propagate, pytest's handler gets them
    lines = rosout(rig)
    # A fresh engine (the rig's are shared), so auto chooses, and logs, here.
    node = start(rig, "hint_node", engine_factory=_fresh_engine, precision="auto")
    hint, = logged(rig, lines, HINT)
    assert hint.level == Log.INFO
    assert hint.name == node.get_logger().name
    assert hint.msg.startswith("precision auto: fp32 on onnxruntime; int8 ")
    # Not handed on to Python's own handlers too: that would print it twice.
    assert not [r for r in caplog.records if HINT in r.getMessage()]


def test_each_severity_once_and_from_the_newest_node(rig, caplog):
    from rcl_interfaces.msg import Log
    caplog.set_level(logging.DEBUG)
    lines = rosout(rig)
    first = start(rig, "forward_first")
    second = start(rig, "forward_second")
    engine_log = logging.getLogger("canet_ros.inference")
    engine_log.info("forwarded info %d", 1)
    engine_log.warning("forwarded warning")
    engine_log.error("forwarded error")
    engine_log.critical("forwarded critical")
    for words, level in (("forwarded info 1", Log.INFO), ("forwarded warning", Log.WARN),
                         ("forwarded error", Log.ERROR), ("forwarded critical", Log.FATAL)):
        line, = logged(rig, lines, words, settle=0.2)
        assert (line.level, line.name) == (level, second.get_logger().name)
    assert not [r for r in caplog.records if "forwarded" in r.getMessage()]
    # The newest node gone, the one still running logs the package's records.
    stop(rig, second)
    engine_log.warning("after the second stopped")
    line, = logged(rig, lines, "after the second stopped")
    assert line.name == first.get_logger().name


def test_the_node_log_level_decides_and_stopping_restores_the_logger(rig):
    from rclpy.logging import LoggingSeverity, set_logger_level
    package = logging.getLogger("canet_ros")
    engine_log = logging.getLogger("canet_ros.inference")
    level = package.level
    # As in a plain process: INFO held back (under pytest the root logger is at INFO).
    package.setLevel(logging.WARNING)
    set_logger_level("forward_quiet", LoggingSeverity.WARN)
    try:
        before = (package.level, package.propagate, list(package.handlers))
        node = start(rig, "forward_default_level")
        assert engine_log.isEnabledFor(logging.INFO)
        assert not engine_log.isEnabledFor(logging.DEBUG)
        assert not package.propagate
        stop(rig, node)
        assert (package.level, package.propagate, package.handlers) == before
        # --log-level warn (set here before the node starts, by its name) holds INFO back.
        node = start(rig, "forward_quiet")
        assert not engine_log.isEnabledFor(logging.INFO)
        assert engine_log.isEnabledFor(logging.WARNING)
        stop(rig, node)
    finally:
        set_logger_level("forward_quiet", LoggingSeverity.UNSET)
        package.setLevel(level)


def test_the_console_script_prints_the_hint_and_a_warning_once(rig, seeded):
    int8_waits_here()
    rig.engine(str(seeded), device="cpu", precision="fp32")  # its ONNX export, cached
    # A CPU with int8 but no bf16 and no int8 graph yet, and a numba that does not
    # import: real start-up paths that log an INFO line and a warning.
    code = (
        "import sys\n"
        "from canet_ros.inference import cpu_features, cpu_runners, kernels\n"
        "cpu_features.cpu_flags = lambda: frozenset({'avx2', 'avx512_vnni'})\n"
        "cpu_runners._int8_ready = lambda graph: False\n"
        f"kernels._import_numba = lambda: (None, {NUMBA_PROBLEM!r})\n"
        "kernels._numba.cache_clear()\n"
        "from canet_ros.ros.node import main\n"
        "sys.exit(main(['segmentation_node', '--ros-args', '-p', 'device:=cpu',\n"
        f"               '-p', 'checkpoint:={seeded}', '-p', 'image_topic:=/forwarding']))\n")
    run = RosProcess([sys.executable, "-c", code], node_env(), "log forwarding")
    try:
        assert run.wait_line("ready:", timeout=300) is not None, run.output
        run.send(signal.SIGINT)
        assert run.wait(60) == 0, run.output
    finally:
        run.stop()
    hint = [line for _, line in run.lines if HINT in line]
    numba = [line for _, line in run.lines if NUMBA_PROBLEM in line]
    assert len(hint) == 1 and "[INFO]" in hint[0] and "[segmentation_node]" in hint[0], \
        run.output
    assert len(numba) == 1 and "[WARN]" in numba[0] and "[segmentation_node]" in numba[0], \
        run.output
    assert not run.problems(), run.output

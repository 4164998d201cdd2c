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

"""The node embedded in a host program (real rclpy, as test_node.py).

rclpy's own Node options work (automatic declaration from overrides); nodes started in
parallel threads keep their engine's log lines apart; ``main(args)`` gives the host its
signal handlers back, and runs from a thread other than the main one.
"""
import logging
import sys
import threading

import pytest
from ros_helpers import Rig
from ros_processes import RosProcess, node_env

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def values(rig: Rig, **params) -> dict:
    return {"checkpoint": rig.checkpoint, "device": "cpu", "precision": "fp32",
            "stats_period": 60.0, **params}


def test_automatic_declaration_from_overrides_reads_the_overrides(rig):
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode, StartupError
    given = values(rig, resolution="96x72", overlay_alpha=0.25, mask_filter="x")
    node = SegmentationNode(parameter_overrides=[Parameter(k, value=v)
                                                 for k, v in given.items()],
                            automatically_declare_parameters_from_overrides=True,
                            engine_factory=rig.engine)
    rig.nodes.append(node)
    assert node.config.resolution == (96, 72) and node.config.overlay_alpha == 0.25
    assert node.engine.resolution == (96, 72)
    # Declared again with the node's own descriptors: read-only, ranges.
    assert node.describe_parameter("resolution").read_only
    assert not node.describe_parameter("overlay_alpha").read_only
    assert not node.set_parameters([Parameter("overlay_alpha", value=1.5)])[0].successful
    bad = values(rig, overlay_alpha=2.0)  # outside 0..1: refused as without the option
    with pytest.raises(StartupError, match="overlay_alpha"):
        SegmentationNode("bad_alpha", parameter_overrides=[Parameter(k, value=v)
                                                           for k, v in bad.items()],
                         automatically_declare_parameters_from_overrides=True,
                         engine_factory=rig.engine)


def rosout(rig: Rig) -> list:
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    return rig.probe.listen("/rosout", Log, QoSProfile(
        depth=1000, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))


def test_nodes_started_in_threads_keep_their_engine_lines(rig):
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode
    got = rosout(rig)
    # Each engine logs only once both nodes are constructing: the newest is then the
    # other node for one of them.
    both = threading.Barrier(2, timeout=60)

    def engine(*args, **kwargs):
        both.wait()
        logging.getLogger("canet_ros.inference").warning(
            "engine line for %s", threading.current_thread().name)
        return rig.engine(*args, **kwargs)

    nodes, errors = {}, []

    def start(name):
        try:
            nodes[name] = SegmentationNode(
                name, parameter_overrides=[Parameter(k, value=v) for k, v in values(rig).items()],
                engine_factory=engine)
        except Exception as exc:  # reported by the assertion below
            errors.append(repr(exc))

    threads = [threading.Thread(target=start, args=(name,), name=name)
               for name in ("cam_a", "cam_b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for node in nodes.values():
        rig.nodes.append(node)
        rig.executor.add_node(node)
    assert not errors and len(nodes) == 2, errors

    def lines():
        return {(m.name, m.msg) for m in got if "engine line for" in m.msg}

    assert rig.spin_until(lambda: len(lines()) >= 2), lines()
    assert lines() == {("cam_a", "engine line for cam_a"), ("cam_b", "engine line for cam_b")}


def test_engine_lines_during_inference_are_the_inferring_nodes(rig):
    from rclpy.parameter import Parameter
    from ros_helpers import Recorder, image_msg, synthetic_frame

    from canet_ros.ros.segmentation import SegmentationNode
    got = rosout(rig)

    class Talking(Recorder):
        def infer(self, frame, order="rgb", **flags):
            logging.getLogger("canet_ros.inference").warning(
                "inference line from %s", threading.current_thread().name)
            return super().infer(frame, order, **flags)

    nodes = {}
    for name in ("older_cam", "newer_cam"):  # the newer one gets the records of no node
        nodes[name] = SegmentationNode(
            name, parameter_overrides=[Parameter(k, value=v) for k, v in values(rig).items()],
            engine_factory=lambda *a, **k: Talking(rig.engine(*a, **k)))
        rig.nodes.append(nodes[name])
        rig.executor.add_node(nodes[name])
    labels = rig.listen(nodes["older_cam"], "labels")
    rig.deliver(nodes["older_cam"], image_msg(synthetic_frame()))
    rig.wait_for(labels)

    def lines():
        return {(m.name, m.msg) for m in got if "inference line from" in m.msg}

    assert rig.spin_until(lambda: lines()), lines()
    assert lines() == {("older_cam", "inference line from older_cam_inference")}


# main(args) in a host program: once spinning, a SIGINT stops it; then the host's own
# handlers must be back. Then main runs in a thread, stopped by rclpy.shutdown().
HOST = """
import os, signal, sys, threading, time
import rclpy
from canet_ros.ros import node
def host(signum, frame):
    print("host handler", signal.Signals(signum).name, flush=True)
signal.signal(signal.SIGINT, host)
signal.signal(signal.SIGTERM, host)
spin, spinning = node._spin, threading.Event()
def spin_and_tell(n, signals):
    spinning.set()
    spin(n, signals)
node._spin = spin_and_tell
args = ["--ros-args", "-p", "device:=cpu", "-p", "precision:=fp32", "-p",
        "resolution:=96x72", "-p", "stats_period:=60.0"]
threading.Thread(target=lambda: spinning.wait(300) and (time.sleep(0.5) or
                 os.kill(os.getpid(), signal.SIGINT)), daemon=True).start()
print("main returned", node.main(args), flush=True)
print("handlers restored", signal.getsignal(signal.SIGINT) is host
      and signal.getsignal(signal.SIGTERM) is host, flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.5)
spinning.clear()
result = {}
def run():
    try:
        result["status"] = node.main(args)
    except BaseException as exc:
        result["status"] = repr(exc)
thread = threading.Thread(target=run)
thread.start()
if spinning.wait(300):
    rclpy.shutdown()
thread.join(60)
print("thread main returned", result.get("status"), "alive", thread.is_alive(), flush=True)
print("handlers untouched", signal.getsignal(signal.SIGINT) is host, flush=True)
result.clear()
thread = threading.Thread(target=run)  # stopped while the node is still being made
thread.start()
while not rclpy.ok() and thread.is_alive():
    time.sleep(0.001)
rclpy.shutdown()
thread.join(60)
print("early stop returned", result.get("status"), "alive", thread.is_alive(), flush=True)
sys.exit(0)
"""


def test_main_with_args_gives_the_host_its_signals_back_and_runs_in_a_thread():
    run = RosProcess([sys.executable, "-c", HOST], node_env(), "host program")
    try:
        code = run.wait(600)
    finally:
        run.stop()
    out = run.output
    assert code == 0, out
    assert "main returned 0" in out and "handlers restored True" in out, out
    assert "host handler SIGTERM" in out, out  # the host's handler, after main returned
    assert "thread main returned 0 alive False" in out, out
    assert "handlers untouched True" in out and "Traceback" not in out, out
    assert "early stop returned 0 alive False" in out, out

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

"""SegmentationNode inside a host's own process: the host's rclpy.init, executors and exit.

rclpy makes destroy_node() optional and lets a host shut its context down whenever it
likes; none of that may abort the host, end its executor's spin or leave the node's
memory behind (canet_ros.ros.node_lifetime).
"""
import gc
import sys
import threading
import weakref

import pytest
from ros_helpers import Recorder, image_msg, synthetic_frame
from ros_processes import RosProcess, node_env

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The host below: a plain Node listening to the labels, the segmentation node (its engine
# slowed down so the frame is still in flight), one frame handed to it, then the host
# ends (argv[2]: "end", "raise": an uncaught exception, "shutdown": rclpy.shutdown() first)
# while the engine is inside that frame, without destroy_node().
_HOST = r"""
import sys, threading, time
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from canet_ros.inference import SegmentationEngine
from canet_ros.ros.segmentation import SegmentationNode

checkpoint, how = sys.argv[1], sys.argv[2]
entered = threading.Event()


class Slow:
    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, *args, **kwargs):
        entered.set()
        time.sleep(2.0)  # far longer than the interpreter takes to go down
        print("frame finished", flush=True)
        return self._engine.infer(*args, **kwargs)


rclpy.init()
listener = Node("host_listener")
listener.create_subscription(Image, "/segmentation/labels", lambda msg: None, 1)
node = SegmentationNode(parameter_overrides=[
    Parameter("checkpoint", value=checkpoint), Parameter("device", value="cpu"),
    Parameter("precision", value="fp32")],
    engine_factory=lambda *a, **k: Slow(SegmentationEngine(*a, **k)))
labels, = [p for p in node.publishers if p.topic_name == "/segmentation/labels"]
deadline = time.monotonic() + 60
while not labels.get_subscription_count() and time.monotonic() < deadline:
    time.sleep(0.01)
subscription, = node.subscriptions
subscription.callback(Image(height=96, width=128, encoding="bgr8", step=384,
                            data=bytes(128 * 96 * 3)))
assert entered.wait(60)
print("host ends", flush=True)
if how == "shutdown":
    rclpy.shutdown()
if how == "raise":
    raise RuntimeError("the host's own bug")
"""


@pytest.mark.parametrize("how", ["end", "raise", "shutdown"])
def test_the_host_exits_after_the_frame_in_flight(seeded, how):
    """The interpreter's exit waits for the frame: a frozen runtime call would abort it.

    At exit the worker, a daemon thread, was frozen where it stood; inside OpenVINO or
    ONNX Runtime that ends the host with "terminate called without an active exception"
    (status 134). The engine here is slowed in Python, where freezing is silent: the
    frame that never finishes shows it.
    """
    run = RosProcess([sys.executable, "-c", _HOST, str(seeded), how], node_env(), how)
    code = run.wait(300)
    if code is None:
        run.stop()
    output = run.output
    assert code == (1 if how == "raise" else 0), output
    assert "host ends" in output and "frame finished" in output, output
    assert output.index("host ends") < output.index("frame finished"), output
    # After rclpy.shutdown() the frame cannot be published: it is dropped without a word.
    for problem in ("[ERROR]", "Failed to publish", "terminate called"):
        assert problem not in output, output


def _node(rig, name, **kwargs):
    """Return a SegmentationNode on the rig's model that neither the rig nor its executor holds."""
    from rclpy.parameter import Parameter

    from canet_ros.ros.segmentation import SegmentationNode
    values = {"checkpoint": rig.checkpoint, "device": "cpu", "precision": "fp32",
              "stats_period": 60.0}
    gate = kwargs.pop("gate", None)
    return SegmentationNode(
        name, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
        engine_factory=lambda *a, **k: Recorder(rig.engine(*a, **k), gate), **kwargs)


def test_callbacks_around_destroy_node_never_reach_the_hosts_executor(rig, monkeypatch):
    """A stats tick already dispatched when destroy_node() runs returns quietly, as do later ones.

    From another thread of a host's MultiThreadedExecutor the tick runs on while the node
    loses its publishers and engine; an exception would end the host's spin, and every
    node in it. Forced here: destroy_node() runs inside the tick.
    """
    from canet_ros.ros import segmentation
    node = _node(rig, "racing_destroy")
    callbacks = [timer.callback for timer in node.timers]
    subscription, = node.subscriptions
    real = segmentation.static_key_values

    def destroyed_meanwhile(*args):
        node.destroy_node()
        return real(*args)
    monkeypatch.setattr(segmentation, "static_key_values", destroyed_meanwhile)
    assert node._stats_timer.callback() is None
    assert node.destroyed and node.engine is None and not list(node.timers)
    for callback in callbacks:  # dispatched just before destroy_node(), run just after
        callback()
    subscription.callback(image_msg(synthetic_frame()))
    assert node.frame_stats.totals()["received"] == 0


def test_a_node_dropped_without_destroy_node_is_collected(rig):
    """Drop a node as rclpy allows, without destroy_node(): the worker must not keep it."""
    from canet_ros.ros.log_forwarding import FORWARDING
    node = _node(rig, "dropped_node")
    worker, collected, logger = node._worker, weakref.ref(node), node.get_logger()
    assert worker.is_alive()
    del node
    gc.collect()
    assert collected() is None
    assert all(forwarded is not logger for forwarded in FORWARDING.handler.loggers)
    worker.join(60)  # its mailbox closed with the node
    assert not worker.is_alive()
    graph = rig.probe.node
    assert rig.spin_until(lambda: "dropped_node" not in graph.get_node_names())


def test_destroy_node_after_the_context_was_shut_down(rig, capfd):
    """Destroy the node after a shutdown, as rclpy's tutorial does after its signal handler.

    The frame in flight cannot be published: it is dropped without an ERROR, and the
    stop's totals reach the console without a failed publish to rosout. The node has its
    own context, whose shutdown leaves the process's logging (and rosout) up, as rclpy's
    signal handler does.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    gate = threading.Event()
    node = _node(rig, "shut_down_under", context=context, gate=gate)
    listener = Node("shut_down_listener", context=context)
    try:
        listener.create_subscription(Image, "/segmentation/labels", lambda msg: None, 1)
        labels, = [p for p in node.publishers if p.topic_name == "/segmentation/labels"]
        assert rig.spin_until(lambda: labels.get_subscription_count() > 0)
        done, process = threading.Event(), node._process

        def process_then_tell(*args):
            try:
                return process(*args)
            finally:
                done.set()
        node._process = process_then_tell
        subscription, = node.subscriptions
        subscription.callback(image_msg(synthetic_frame()))
        assert node.engine.entered.wait(60)
        capfd.readouterr()
        context.shutdown()
        gate.set()
        assert done.wait(60)  # its publish failed while the node still ran, as after Ctrl-C
        node.destroy_node()
    finally:
        gate.set()
        node.destroy_node()
        listener.destroy_node()
        context.try_shutdown()
    err = capfd.readouterr().err
    # The frame is in the totals, as dropped (nothing could take it), not as a fault.
    assert "stopped: received 1, published 0, dropped 1, idle 0, malformed 0, failed 0" in err, \
        err
    for problem in ("[ERROR]", "segmentation failed", "Failed to publish"):
        assert problem not in err, err
    assert node.frame_stats.totals()["failed"] == 0


class _StuckThread:
    """A worker inside a frame that never returns: join() only lets the clock run out."""

    def __init__(self, name, clock):
        self.name, self.clock, self.timeouts = name, clock, []

    def join(self, timeout):
        self.timeouts.append(timeout)
        self.clock[0] += timeout

    def is_alive(self):
        return True


class _Mailbox:
    closed = False

    def close(self):
        self.closed = True


def test_the_exit_waits_once_for_all_stuck_workers(monkeypatch):
    """Three stuck nodes held the exit 3 x 30 s; now one wait for all."""
    from canet_ros.ros import node_lifetime

    clock = [100.0]
    monkeypatch.setattr(node_lifetime.time, "monotonic", lambda: clock[0])
    workers = {_StuckThread(f"seg_inference_{i}", clock): _Mailbox() for i in range(3)}
    monkeypatch.setattr(node_lifetime, "_running", dict(workers))
    monkeypatch.setattr(node_lifetime, "_exiting", False)
    node_lifetime._stop_workers()
    assert all(mailbox.closed for mailbox in workers.values())
    waited = sum(sum(thread.timeouts) for thread in workers)
    assert waited == pytest.approx(node_lifetime.EXIT_JOIN_TIMEOUT_S)


def await_or_execute(callback, *args):
    """Stand for rclpy's executor, which calls every callback through this name."""
    return callback(*args)


def test_a_failed_callback_is_named_through_until_destroyed():
    from canet_ros.ros.node import failed_callback
    from canet_ros.ros.node_lifetime import until_destroyed

    class Node:
        destroyed = False

        @until_destroyed
        def _on_stats_timer(self):
            raise RuntimeError("graph query failed")

    with pytest.raises(RuntimeError) as caught:
        await_or_execute(Node()._on_stats_timer)
    assert failed_callback(caught.value) == "test_node_embedded._on_stats_timer"

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

"""A malformed request to one of the node's services is dropped; the node goes on.

rclpy's parameter service raises out of the executor on a SetParameters value whose type
is no ParameterType (42); docs/ros.md promises that a malformed message is logged and
dropped, never the end of the node. The node runs as its console script (another
process) and the request travels over DDS, as any client's would.
"""
import pytest
from ros_helpers import (
    Probe,
    as_array,
    check_color_and_overlay,
    image_msg,
    spin_until,
    synthetic_frame,
)
from ros_processes import start_node

pytestmark = pytest.mark.usefixtures("ros")  # skips where rclpy is missing

START_TIMEOUT_S = 300.0
SERVICE = "/segmentation_node/set_parameters"


def _request(name, value):
    from rcl_interfaces.msg import Parameter
    from rcl_interfaces.srv import SetParameters
    return SetParameters.Request(parameters=[Parameter(name=name, value=value)])


def test_a_malformed_parameter_request_is_logged_and_the_node_still_works(seeded):
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    run = start_node("-p", f"checkpoint:={seeded}", "-p", "device:=cpu", "-p",
                     "precision:=fp32", "-p", "stats_period:=60.0", name="bad request")
    probe = Probe("bad_request_client")
    executor = SingleThreadedExecutor()
    executor.add_node(probe.node)
    try:
        assert run.wait_line("ready:", START_TIMEOUT_S) is not None, run.output
        client = probe.node.create_client(SetParameters, SERVICE)
        assert client.wait_for_service(timeout_sec=60.0), run.output
        client.call_async(_request("overlay_alpha", ParameterValue(type=42, double_value=0.9)))
        assert run.wait_line("what it was handling is dropped", 60) is not None, run.output
        # The same node, not a restarted one, answers a good request and takes its value.
        good = client.call_async(_request("overlay_alpha", ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=0.3)))
        assert spin_until(executor, good.done), run.output
        assert good.result().results[0].successful, good.result()
        outputs = {name: probe.listen(f"/segmentation/{name}", Image)
                   for name in ("labels", "color", "overlay")}
        camera = probe.node.create_publisher(Image, "/camera/image_raw", 1)
        bgr = synthetic_frame(seed=3)
        msg = image_msg(bgr)

        def segmented():
            camera.publish(msg)  # until the node has seen our subscriptions
            return all(outputs.values())
        assert spin_until(executor, segmented), run.output
        check_color_and_overlay(*(as_array(outputs[n][0]) for n in ("labels", "color",
                                                                    "overlay")),
                                bgr, "bgr", alpha=0.3)
        assert run.proc.poll() is None, run.output
    finally:
        executor.shutdown()
        probe.destroy()
        run.stop()
    assert run.proc.returncode == 0, run.output
    error, = [line for _, line in run.lines if "[ERROR]" in line]
    # Names what failed and why, in one line; the traceback only at debug level.
    assert "_set_parameters_callback" in error and "42 is not a valid" in error, error
    assert "Traceback" not in run.output, run.output
    ready, = [line for _, line in run.lines if "ready:" in line]
    assert f"from {seeded} (sha256 " in ready and " at 128x96" in ready, ready  # what runs


def test_only_a_callbacks_exception_is_survived(monkeypatch):
    """A failing callback costs its own event; a fault of the executor itself still ends.

    The executor's would come back at every spin without waiting (docs/ros.md).
    """
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from canet_ros.ros import node as process

    signals, ticks = process.StopSignals(), []

    def tick():
        ticks.append(len(ticks))
        if len(ticks) == 3:
            signals.received.append("SIGINT")  # as the handler records a Ctrl-C
        raise RuntimeError("timer fault")
    node = Node("spin_faults")
    try:
        node.create_timer(0.01, tick)
        process._spin(node, signals)  # returns on the stop request, not on the first fault
        assert ticks == [0, 1, 2]

        stop, calls = process.StopSignals(), []

        def broken(*args, **kwargs):
            calls.append(1)
            if len(calls) > 50:  # a _spin that swallowed it loops: end it, failing, not hanging
                stop.received.append("SIGINT")
            raise RuntimeError("wait set broken")
        monkeypatch.setattr(SingleThreadedExecutor, "wait_for_ready_callbacks", broken)
        with pytest.raises(RuntimeError, match="wait set broken"):
            process._spin(node, stop)
        assert len(calls) == 1
    finally:
        node.destroy_node()

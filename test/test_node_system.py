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

"""System test: the node as its console script, fed by a camera in another process.

Two node processes start as a user would start them (``--ros-args``, a namespace,
``--params-file config/canet_mobilenetv2.yaml``, the bundled model): one reads raw
frames, one JPEGs. Two camera processes stream real CamVid frames upscaled to a camera
size (960x720), raw ones with padded rows. The test subscribes to the inputs, every
output and /diagnostics, and checks what came out against what went in and against
CamVid's ground truth; then it changes parameters through the real services (and changes
them back: the tests share the nodes) and stops nodes of their own with SIGINT and
SIGTERM while frames are streaming.
"""
import signal
import time
from types import SimpleNamespace

import pytest
from ros_helpers import (
    REPO,
    Probe,
    as_array,
    camvid_pairs,
    check_color_and_overlay,
    decode_jpeg,
    pixel_accuracy,
    spin_until,
)
from ros_processes import report, start_camera, start_node

CONFIG = str(REPO / "config" / "canet_mobilenetv2.yaml")
OUTPUTS = {"labels": "mono8", "color": "rgb8", "overlay": "bgr8", "confidence": "mono8"}
STREAMS = {"raw": "/sys_raw", "compressed": "/sys_jpeg"}
RAW_NODE = "/sys_raw/segmentation_node"
INPUT = "/camera/image_raw"  # the YAML's image_topic; absolute, so namespaces keep it
WIDTH, HEIGHT, FRAMES = 960, 720, 4
START_TIMEOUT_S = 600.0  # a first start exports the model to ONNX; the machine is shared


def start_system_node(transport: str, namespace: str, label: str):
    """Start a node as the system test runs it and wait until it is ready."""
    node = start_node(
        "--params-file", CONFIG, "-p", "device:=cpu", "-p", "stats_period:=1.0",
        "-p", f"publish_confidence:={transport == 'raw'}",
        "-p", f"input_transport:={transport}", namespace=namespace, name=label)
    ready = node.wait_line("ready:", START_TIMEOUT_S)
    assert ready is not None, node.output
    # The first start of a run exports the model to ONNX (with torch), unless an
    # earlier test module's node already did; later starts find it cached.
    report(f"node start -> ready ({label})", ready)
    return node


def outputs_of(transport: str) -> list:
    return list(OUTPUTS) if transport == "raw" else list(OUTPUTS)[:3]


@pytest.fixture(scope="module")
def system(ros):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image
    truth = [labels for _, _, labels in camvid_pairs(FRAMES)]
    nodes, cameras, probe = {}, [], Probe("system_probe")
    executor = SingleThreadedExecutor()
    executor.add_node(probe.node)
    try:
        for transport, namespace in STREAMS.items():  # one after the other: the second
            # start finds the ONNX export cached
            nodes[transport] = start_system_node(transport, namespace, f"{transport} node")
        got = {"raw": {"input": probe.listen(INPUT, Image, qos_profile_sensor_data, keep=20)},
               "compressed": {"input": probe.listen(INPUT + "/compressed", CompressedImage,
                                                    qos_profile_sensor_data, keep=20)}}
        for transport, namespace in STREAMS.items():
            for name in outputs_of(transport):
                got[transport][name] = probe.listen(f"{namespace}/segmentation/{name}",
                                                    keep=20)
        cameras = [start_camera(INPUT, f"{WIDTH}x{HEIGHT}", 2.0, pad=64, prefix="r"),
                   start_camera(INPUT, f"{WIDTH}x{HEIGHT}", 2.0, transport="compressed",
                                prefix="j")]
        yield SimpleNamespace(nodes=nodes, got=got, truth=truth, probe=probe,
                              executor=executor)
    finally:
        for process in cameras + list(nodes.values()):
            process.stop()
        executor.shutdown()
        probe.destroy()


def complete_frames(streams, transport):
    """frame_id -> {"input": msg, output: msg, ...} for frames with every output in."""
    got = streams.got[transport]
    by_id = {}
    for name, messages in got.items():
        for msg in list(messages):
            by_id.setdefault(msg.header.frame_id, {})[name] = msg
    return {fid: msgs for fid, msgs in by_id.items() if len(msgs) == len(got)}


def wait_frames(streams, transport, count, newer_than=-1):
    def ready():
        done = complete_frames(streams, transport)
        return sum(int(fid[1:]) > newer_than for fid in done) >= count
    assert spin_until(streams.executor, ready, timeout=300), \
        streams.nodes[transport].output
    done = complete_frames(streams, transport)
    return {fid: msgs for fid, msgs in sorted(done.items(), key=lambda kv: int(kv[0][1:]))
            if int(fid[1:]) > newer_than}


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_outputs_match_the_input_and_the_ground_truth(system, transport):
    frames = wait_frames(system, transport, count=2)
    accuracies = []
    for fid, msgs in list(frames.items())[:2]:
        source = msgs.pop("input")
        frame = as_array(source) if transport == "raw" else decode_jpeg(source)
        if transport == "raw":
            assert source.step == WIDTH * 3 + 64  # the rows really were padded
        for name, msg in msgs.items():
            assert msg.header == source.header, (fid, name)  # stamp and frame_id
            assert (msg.width, msg.height, msg.encoding) == (WIDTH, HEIGHT, OUTPUTS[name])
        labels = as_array(msgs["labels"])
        accuracies.append(pixel_accuracy(labels, system.truth[int(fid[1:]) % FRAMES]))
        check_color_and_overlay(labels, as_array(msgs["color"]), as_array(msgs["overlay"]),
                                frame, "bgr", alpha=0.5)
    report(f"pixel accuracy on CamVid val at {WIDTH}x{HEIGHT} ({transport})",
           f"{', '.join(f'{a:.3f}' for a in accuracies)}", "")
    assert min(accuracies) >= 0.85, accuracies


def _service(system, service_type, name, request):
    client = system.probe.node.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=60.0)
    future = client.call_async(request)
    assert spin_until(system.executor, future.done, timeout=60)
    system.probe.node.destroy_client(client)
    return future.result()


def _newest_frame_id(system, transport) -> int:
    return max([int(fid[1:]) for fid in complete_frames(system, transport)] + [0])


def _forget_frames_up_to(system, transport, last: int) -> None:
    """Drop the frames a node may have made under a parameter value since changed back."""
    for received in system.got[transport].values():
        kept = [msg for msg in received if int(msg.header.frame_id[1:]) > last]
        received.clear()
        received.extend(kept)


def test_set_parameters_through_the_real_service(system):
    from rcl_interfaces.srv import GetParameters, SetParameters
    from rclpy.parameter import Parameter, parameter_value_to_python

    def set_parameter(name, value):
        request = SetParameters.Request(parameters=[Parameter(name, value=value)
                                                    .to_parameter_msg()])
        return _service(system, SetParameters, f"{RAW_NODE}/set_parameters",
                        request).results[0]

    got = _service(system, GetParameters, f"{RAW_NODE}/get_parameters",
                   GetParameters.Request(names=["overlay_alpha"]))
    alpha = parameter_value_to_python(got.values[0])  # as configured (the YAML's)
    try:
        refused = set_parameter("backbone", "resnet101")
        assert not refused.successful and "restart the node" in refused.reason, refused.reason
        assert set_parameter("overlay_alpha", 0.25).successful
        changed_at = _newest_frame_id(system, "raw")
        newest = list(wait_frames(system, "raw", count=2,
                                  newer_than=changed_at + 1).values())[-1]
        check_color_and_overlay(as_array(newest["labels"]), as_array(newest["color"]),
                                as_array(newest["overlay"]), as_array(newest["input"]),
                                "bgr", alpha=0.25)
    finally:
        # The module's other tests share this node and expect its configured alpha, in
        # every frame they take from the probe's buffers too.
        assert set_parameter("overlay_alpha", alpha).successful
        restored_at = _newest_frame_id(system, "raw") + 1
        wait_frames(system, "raw", count=1, newer_than=restored_at)
        _forget_frames_up_to(system, "raw", restored_at)


@pytest.mark.parametrize("transport, signum", [("raw", signal.SIGINT),
                                               ("compressed", signal.SIGTERM)])
def test_signal_while_streaming_stops_cleanly(system, transport, signum):
    # A node of its own, in a namespace of its own: the module's nodes keep running for
    # whichever test comes next.
    namespace = f"{STREAMS[transport]}_signal"
    probe = Probe(f"signal_probe_{transport}")
    system.executor.add_node(probe.node)
    got = {name: probe.listen(f"{namespace}/segmentation/{name}", keep=1)
           for name in outputs_of(transport)}
    node = start_system_node(transport, namespace, f"{transport} node for a signal")
    try:
        assert spin_until(system.executor, lambda: all(got.values()), timeout=300), \
            node.output  # streaming: every output has come in
        sent = node.send(signum)
        code = node.wait(60)
        elapsed = time.monotonic() - sent
        report(f"{signal.Signals(signum).name} while streaming -> exit ({transport})",
               elapsed)
        assert code == 0, node.output
        assert not node.problems(), node.output
        assert elapsed <= 5.0, node.output
    finally:
        node.stop()
        system.executor.remove_node(probe.node)
        probe.destroy()


def test_start_up_to_a_bad_parameter_exit(ros):
    run = start_node("--params-file", CONFIG, "-p", "resolution:=abc", name="bad")
    code = run.wait(120)
    report("node start -> exit on a bad parameter", time.monotonic() - run.started)
    assert code == 1 and "[FATAL]" in run.output, run.output

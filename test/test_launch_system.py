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

"""System test: what a ROS user does with ``ros2 launch``, in a colcon workspace.

``colcon build`` of this package in a temporary workspace, ``source install/setup.bash``,
then ``ros2 launch canet_ros segment.launch.py`` with every node parameter given as a
launch argument, frames from a camera in another process, and every output checked
against an independent engine and the class palette; ``ros2 param`` through ros2cli;
SIGINT to ``ros2 launch``; ``multi_camera.launch.py`` with both nodes; ``--show-args``
against what the files accept. Each test has its own DDS domain, on this machine only.
The model is a small seeded CANet at 128x96, on the CPU.
"""
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml
from ros_helpers import (
    CAMVID_ROOT,
    REPO,
    SEEDED_RESOLUTION,
    as_array,
    assert_labels_vary,
    check_color_and_overlay,
    decode_jpeg,
    palette,
    seeded_checkpoint,
    spin_until,
)
from ros_processes import RosProcess, report
from ros_workspace import shell

from canet_ros.launch_config import SEGMENT_ARGUMENT_NAMES
from canet_ros.launch_multi_camera import MULTI_CAMERA_ARGUMENT_NAMES
from canet_ros.ros.params import SPECS

START_TIMEOUT_S = 300.0
CAMERA_SIZE = (160, 120)
OUTPUTS = {"labels": "mono8", "color": "rgb8", "overlay": "bgr8", "confidence": "mono8"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return seeded_checkpoint(tmp_path_factory.mktemp("launch_model") / "seeded.pt")


@pytest.fixture(scope="module")
def reference(checkpoint, one_torch_thread):
    """Build the same model in this process: what the node must compute.

    Its ONNX export, made first, is the one the launched nodes then find in the cache.
    """
    from canet_ros.inference import SegmentationEngine
    return SegmentationEngine(str(checkpoint), device="cpu", resolution=SEEDED_RESOLUTION)


@pytest.fixture(scope="module")
def network_reference(checkpoint, one_torch_thread):
    """Build the model with output_size="network": what a node with that setting computes."""
    from canet_ros.inference import SegmentationEngine
    return SegmentationEngine(str(checkpoint), device="cpu", resolution=SEEDED_RESOLUTION,
                              output_size="network")


def ros2_launch(workspace, env, launch_file, **arguments):
    argv = ["ros2", "launch", "canet_ros", launch_file] + [f"{k}:={v}"
                                                           for k, v in arguments.items()]
    return RosProcess(shell(workspace, *argv), env, f"ros2 launch {launch_file}")


def ros2(workspace, env, *argv, tries=5):
    """Run a ros2 CLI command, retried, as discovery may miss a node.

    Three tries in a row did on a loaded machine, each CLI call discovering the graph
    afresh with --no-daemon. ``ros2 param`` verbs also wait up to 10 s for the node, not
    their default 1 s.
    """
    if argv[:1] == ("param",):
        argv = (*argv[:2], "--timeout", "10", *argv[2:])
    for attempt in range(tries):
        if attempt:
            time.sleep(1.0)
        run = subprocess.run(shell(workspace, "ros2", *argv), env=env, capture_output=True,
                             text=True, timeout=120)
        if run.returncode == 0 and "not found" not in (run.stdout + run.stderr).lower():
            break
    return run.returncode, run.stdout + run.stderr


def start_camera(env, topic, prefix, transport="raw"):
    argv = [sys.executable, str(REPO / "test" / "ros_camera.py"), "--topic", topic,
            "--size", "x".join(map(str, CAMERA_SIZE)), "--rate", "4", "--prefix", prefix,
            "--transport", transport, "--reliability", "reliable", "--wait", "600"]
    if (CAMVID_ROOT / "val").is_dir():
        argv += ["--frames", str(CAMVID_ROOT / "val")]
    return RosProcess(argv, env, f"camera {topic}")


def stop_all(*processes):
    for process in processes:
        if process is not None:
            process.stop()


class Listener:
    """A probe node in the test's domain: keeps what arrives, by topic."""

    def __init__(self, context, name):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        self.node = Node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.got = {}

    def listen(self, topic, msg_type=None, qos=None):
        from rclpy.qos import qos_profile_sensor_data
        if msg_type is None:
            from sensor_msgs.msg import Image as msg_type
        self.got[topic] = received = []
        self.node.create_subscription(msg_type, topic, lambda msg: received.append(msg),
                                      qos or qos_profile_sensor_data)
        return received

    def frames(self, topics, count):
        """Wait for ``count`` frame_ids seen on every topic; {frame_id: {topic: msg}}."""
        def complete():
            ids = [{m.header.frame_id: m for m in self.got[t]} for t in topics]
            return {fid: {t: ids[i][fid] for i, t in enumerate(topics)}
                    for fid in ids[0] if all(fid in d for d in ids)}
        assert spin_until(self.executor, lambda: len(complete()) >= count, timeout=300), \
            {t: len(self.got[t]) for t in topics}
        return complete()

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def segment_arguments(workspace, checkpoint):
    """Give a value to every argument segment.launch.py has; none is the shipped default.

    use_sim_time with no /clock: the node's clock stands at 0, yet its statistics run on
    the steady clock and its outputs keep the camera's stamps (docs/ros.md).
    """
    share = workspace.root / "install" / "canet_ros" / "share" / "canet_ros" / "config"
    colours = checkpoint.with_name("class_colors.yaml")  # CamVid's own: check_frame holds
    colours.write_text("Sky: [128, 128, 128]\n")
    return {"backbone": "mobilenetv2", "checkpoint": str(checkpoint), "device": "cpu",
            "class_colors": str(colours), "color_encoding": "bgr8", "output_size": "network",
            "precision": "fp32", "resolution": "128x96", "overlay_alpha": "0.3",
            "image_topic": "/lt_cam/image_raw", "input_transport": "raw",
            "qos_reliability": "reliable", "publish_confidence": "true",
            "stats_period": "1.0", "namespace": "lt", "use_sim_time": "true",
            "params_file": str(share / "canet_mobilenetv2.yaml"),
            "dds_profile": str(share / "fastdds_large_images.xml")}


def check_frame(msgs, topics, reference, alpha, color_encoding="rgb8", network_size=False):
    """One frame's outputs against the camera's input and the reference engine.

    ``network_size``: the node runs with output_size network, so every output is at the
    network's size (``reference`` built with output_size="network") and the overlay is
    blended on the frame resized to it.
    """
    source = msgs.pop(topics["input"])
    frame = as_array(source)
    size = SEEDED_RESOLUTION if network_size else CAMERA_SIZE
    for name, encoding in dict(OUTPUTS, color=color_encoding).items():
        out = msgs[topics[name]]
        assert out.header == source.header, name
        assert (out.width, out.height, out.encoding) == (*size, encoding), name
    expected = reference.infer(frame, "bgr", confidence=True)
    assert expected.labels.shape == size[::-1]
    labels = as_array(msgs[topics["labels"]])
    assert_labels_vary(expected.labels)
    assert (labels == expected.labels).mean() >= 0.999
    color = as_array(msgs[topics["color"]])  # bgr8: the palette's channels reversed
    rgb = color if color_encoding == "rgb8" else color[..., ::-1]
    overlay = as_array(msgs[topics["overlay"]])
    if network_size:  # blended on the frame resized bilinearly, as the engine does
        expected_rgb = palette()[labels]
        np.testing.assert_array_equal(rgb, expected_rgb)
        small = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR).astype(float)
        blend = (1 - alpha) * small + alpha * expected_rgb[..., ::-1]
        # The engine's resize has 16-bit steps: a level off OpenCV's, 0.5 off rounding.
        assert np.abs(overlay - blend).max() <= 1.1
    else:
        check_color_and_overlay(labels, rgb, overlay, frame, "bgr", alpha)
    confidence = as_array(msgs[topics["confidence"]]).astype(int)
    assert np.abs(confidence - expected.confidence).max() <= 1


def test_ros2_launch_with_every_argument(colcon_workspace, domain, probe_context, checkpoint,
                                         network_reference):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import ReliabilityPolicy

    arguments = segment_arguments(colcon_workspace, checkpoint)
    assert sorted(arguments) == sorted(SEGMENT_ARGUMENT_NAMES)
    launch = ros2_launch(colcon_workspace, domain.env, "segment.launch.py", **arguments)
    camera = listener = None
    try:
        ready = launch.wait_line("ready:", START_TIMEOUT_S)
        assert ready is not None, launch.output
        report("ros2 launch segment.launch.py -> node ready", ready)
        ready_line, = [line for _, line in launch.lines if "ready:" in line]
        assert "at the network's size (128x96)" in ready_line, ready_line
        listener = Listener(probe_context, "launch_probe")
        topics = {name: f"/lt/segmentation/{name}" for name in OUTPUTS}
        topics["input"] = arguments["image_topic"]
        for topic in topics.values():
            listener.listen(topic)
        listener.listen("/diagnostics", DiagnosticArray, 10)
        camera = start_camera(domain.env, arguments["image_topic"], "c")
        frames = listener.frames(list(topics.values()), count=2)
        for msgs in list(frames.values())[:2]:
            check_frame(msgs, topics, network_reference, alpha=0.3, color_encoding="bgr8",
                        network_size=True)
        node_subscription, = [info for info in listener.node.get_subscriptions_info_by_topic(
            arguments["image_topic"]) if info.node_name == "segmentation_node"]
        assert node_subscription.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        check_parameters(colcon_workspace, domain.env, arguments)
        check_label_info(listener, "/lt/segmentation/label_info")
        check_diagnostics(listener)
        stop_all(camera)
        check_sigint(launch)
    finally:  # a failed check must not leave the launch running for the rest of the run
        stop_all(camera, launch)
        if listener is not None:
            listener.close()


def check_parameters(workspace, env, arguments):
    """Every argument reached the node's parameters; ros2 param get/set/describe work."""
    code, out = ros2(workspace, env, "param", "dump", "--no-daemon", "/lt/segmentation_node")
    assert code == 0, out
    dumped = yaml.safe_load(out)["/lt/segmentation_node"]["ros__parameters"]
    for spec in SPECS:
        text = arguments[spec.name]
        expected = {bool: lambda t: t == "true", float: float}.get(type(spec.default), str)(text)
        assert dumped[spec.name] == expected, (spec.name, dumped[spec.name], text)
    assert dumped["use_sim_time"] is True  # rclpy's own parameter, set by the argument
    code, out = ros2(workspace, env, "param", "get", "--no-daemon", "/lt/segmentation_node",
                     "publish_confidence")
    assert code == 0 and "Boolean value is: True" in out, out
    code, out = ros2(workspace, env, "param", "set", "--no-daemon", "/lt/segmentation_node",
                     "overlay_alpha", "0.25")
    assert code == 0 and "Set parameter successful" in out, out
    code, out = ros2(workspace, env, "param", "set", "--no-daemon", "/lt/segmentation_node",
                     "backbone", "resnet18")
    assert "read-only" in out and "restart the node" in out, out
    code, out = ros2(workspace, env, "param", "describe", "--no-daemon",
                     "/lt/segmentation_node", "overlay_alpha")
    assert code == 0 and "double" in out and "Min value: 0.0" in out, out


def check_label_info(listener, topic):
    """Check a subscriber that comes after the node published still gets the class names."""
    from vision_msgs.msg import LabelInfo

    from canet_ros.classes import CAMVID
    from canet_ros.ros.label_info import LABEL_INFO_QOS
    got = listener.listen(topic, LabelInfo, LABEL_INFO_QOS)
    assert spin_until(listener.executor, lambda: got, timeout=60)
    assert [(c.class_id, c.class_name) for c in got[0].class_map] == list(enumerate(CAMVID.names))
    assert got[0].threshold == 0.0


def check_diagnostics(listener):
    """/diagnostics every stats_period (1 s here), describing the launched configuration."""
    name = "/lt/segmentation_node: CANet segmentation"

    def ours():
        return [{kv.key: kv.value for kv in status.values}
                for msg in listener.got["/diagnostics"] for status in msg.status
                if status.name == name]
    assert spin_until(listener.executor, lambda: len(ours()) >= 2, timeout=60)
    values = ours()[-1]
    assert (values["resolution"], values["precision"], values["input_topic"],
            values["output_size"]) == ("128x96", "fp32", "/lt_cam/image_raw", "network")
    assert int(values["published_total"]) >= 2


def check_sigint(launch):
    """Ctrl-C to ros2 launch: every process ends, status 0, no ERROR."""
    sent = launch.send(signal.SIGINT)
    code = launch.wait(60)
    report("SIGINT to ros2 launch -> exit", time.monotonic() - sent)
    assert code == 0, launch.output
    assert not launch.problems(), launch.output
    assert "[ERROR]" not in launch.output and "process has died" not in launch.output


@pytest.mark.parametrize("launch_file, argument, words", [
    ("segment.launch.py", "bakbone:=resnet18", "unknown launch argument(s) bakbone; it takes: "
     + ", ".join(SEGMENT_ARGUMENT_NAMES)),
    ("segment.launch.py", "use_gpu:=true", "unknown launch argument(s) use_gpu"),
    ("segment.launch.py", "publish_confidence:=yes", "publish_confidence 'yes' is not true"),
    ("multi_camera.launch.py", "image_topic:=/cam/image_raw",
     "unknown launch argument(s) image_topic; it takes: "
     + ", ".join(MULTI_CAMERA_ARGUMENT_NAMES)),
    ("multi_camera.launch.py", "front_namespace:=cam_rear", "different namespaces"),
])
def test_a_wrong_argument_stops_the_launch_in_one_line(colcon_workspace, domain, launch_file,
                                                       argument, words):
    name, value = argument.split(":=")
    launch = ros2_launch(colcon_workspace, domain.env, launch_file, **{name: value})
    code = launch.wait(120)
    launch.stop()  # before the node starts, were the argument accepted
    errors = [line for _, line in launch.lines if "[ERROR]" in line]
    assert code == 1, launch.output
    assert len(errors) == 1 and words in errors[0], launch.output
    assert "process started" not in launch.output and "Traceback" not in launch.output


@pytest.mark.parametrize("launch_file, names", [("segment.launch.py", SEGMENT_ARGUMENT_NAMES),
                                                ("multi_camera.launch.py",
                                                 MULTI_CAMERA_ARGUMENT_NAMES)])
def test_show_args_lists_what_the_file_accepts(colcon_workspace, domain, launch_file, names):
    """The lists the launch tests above and below pass in full, one by one."""
    code, out = ros2(colcon_workspace, domain.env, "launch", "canet_ros", launch_file,
                     "--show-args")
    assert code == 0, out
    assert tuple(re.findall(r"^    '([^']+)':$", out, re.MULTILINE)) == names, out
    if launch_file == "segment.launch.py":
        assert {spec.name for spec in SPECS} <= set(names)  # every node parameter


def test_multi_camera_launch_runs_both_nodes(colcon_workspace, domain, probe_context,
                                             checkpoint, reference):
    from sensor_msgs.msg import CompressedImage

    arguments = {"front_namespace": "mc_front", "front_image_topic": "/mc_front/image_raw",
                 "rear_namespace": "mc_rear", "rear_image_topic": "/mc_rear/image_raw",
                 "rear_input_transport": "compressed", "checkpoint": str(checkpoint),
                 "resolution": "128x96", "device": "cpu", "publish_confidence": "true",
                 # fp32 as the reference engine (the default, auto, may take bf16/int8)
                 "precision": "fp32", "overlay_alpha": "0.3", "stats_period": "60.0",
                 "use_sim_time": "true"}  # no timer is checked here: sim time may stand still
    launch = ros2_launch(colcon_workspace, domain.env, "multi_camera.launch.py", **arguments)
    cameras, listener = [], None
    try:
        assert launch.wait_line("ready:", START_TIMEOUT_S) is not None, launch.output
        assert spin_until_two_ready(launch), launch.output
        listener = Listener(probe_context, "multi_probe")
        front = {n: f"/mc_front/segmentation/{n}" for n in OUTPUTS}
        rear = {n: f"/mc_rear/segmentation/{n}" for n in ("labels", "confidence")}
        for topic in list(front.values()) + list(rear.values()):
            listener.listen(topic)
        front["input"] = "/mc_front/image_raw"
        listener.listen(front["input"])
        listener.listen("/mc_rear/image_raw/compressed", CompressedImage)
        cameras = [start_camera(domain.env, "/mc_front/image_raw", "f"),
                   start_camera(domain.env, "/mc_rear/image_raw", "r", "compressed")]
        for msgs in list(listener.frames(list(front.values()), count=1).values())[:1]:
            check_frame(msgs, front, reference, alpha=0.3)
        jpeg_topics = ["/mc_rear/image_raw/compressed"] + list(rear.values())
        for msgs in list(listener.frames(jpeg_topics, count=1).values())[:1]:
            frame = decode_jpeg(msgs[jpeg_topics[0]])
            labels = as_array(msgs[rear["labels"]])
            assert labels.shape == frame.shape[:2]
            assert (labels == reference.infer(frame, "bgr").labels).mean() >= 0.999
        for node in ("/mc_front/segmentation_node", "/mc_rear/segmentation_node"):
            code, out = ros2(colcon_workspace, domain.env, "param", "get", "--no-daemon", node,
                             "use_sim_time")
            assert code == 0 and "Boolean value is: True" in out, (node, out)
        stop_all(*cameras)
        check_sigint(launch)
    finally:
        stop_all(*cameras, launch)
        if listener is not None:
            listener.close()


def spin_until_two_ready(launch, timeout=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum("ready:" in line for _, line in launch.lines) >= 2:
            return True
        if launch.proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False

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

"""vision_msgs/LabelInfo: what each label id means, for subscribers that come late.

The node runs as its console script (another process); the test subscribes only after
the node is ready, as an rviz plugin or ``ros2 bag record`` started later would. The
model is a custom 5-class one: the names must be its own, not CamVid's. Without
vision_msgs the node says so once and segments as before.
"""
import numpy as np
import pytest
from ros_helpers import REPO, Probe, image_msg, spin_until, synthetic_frame
from ros_processes import RosProcess, node_env, node_executable

pytestmark = pytest.mark.usefixtures("ros")  # skips where rclpy is missing

CONFIG = str(REPO / "config" / "canet_mobilenetv2.yaml")
NAMES = ("road", "lane_marking", "vehicle", "person", "background")
START_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def five_classes(tmp_path_factory):
    import torch

    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import ClassSet
    from canet_ros.models import build_canet

    torch.manual_seed(0)
    classes = ClassSet("lanes", NAMES, ((128, 64, 128), (255, 255, 255), (0, 0, 142),
                                        (220, 20, 60), (0, 0, 0)), ignore_index=255)
    path = tmp_path_factory.mktemp("five_classes") / "lanes.pt"
    return save_checkpoint(path, build_canet("mobilenetv2", len(NAMES)).eval(),
                           build_metadata("mobilenetv2", classes, input_size=(64, 64)))


def start(namespace, checkpoint, env=None, name="node"):
    argv = [node_executable(), "--ros-args", "-r", f"__ns:=/{namespace}", "--params-file",
            CONFIG, "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-p",
            "resolution:=64x64", "-p", f"image_topic:=/{namespace}/image_raw"]
    run = RosProcess(argv, env or node_env(), name)
    if run.wait_line("ready:", START_TIMEOUT_S) is None:
        run.stop()
        pytest.fail(f"{name} never became ready:\n{run.output}")
    return run


def spin(probe, predicate, timeout=60.0):
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor()
    executor.add_node(probe.node)
    try:
        return spin_until(executor, predicate, timeout)
    finally:
        executor.shutdown()


def test_label_info_reaches_a_late_subscriber_in_another_process(five_classes):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    LabelInfo = pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed "
                                    "(tools/bootstrap.sh installs it with the launch stack)"
                                    ).LabelInfo
    node = start("label_info", five_classes)
    probe = Probe("label_info_probe")
    try:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        got = probe.listen("/label_info/segmentation/label_info", LabelInfo, latched)
        assert spin(probe, lambda: got), node.output
        assert [(c.class_id, c.class_name) for c in got[0].class_map] == list(enumerate(NAMES))
        assert got[0].threshold == 0.0  # every pixel gets its most likely class
    finally:
        probe.destroy()
        node.stop()
    assert not node.problems(), node.output


def test_without_vision_msgs_the_node_says_so_once_and_runs(tmp_path, five_classes):
    from sensor_msgs.msg import Image
    (tmp_path / "vision_msgs").mkdir()
    (tmp_path / "vision_msgs" / "__init__.py").write_text(
        "raise ImportError('vision_msgs is absent here (simulated)')\n")
    env = node_env()
    env["PYTHONPATH"] = ":".join([str(tmp_path)] + [p for p in [env.get("PYTHONPATH")] if p])
    node = start("no_vision", five_classes, env, "no vision_msgs")
    probe = Probe("no_vision_probe")
    try:
        labels = probe.listen("/no_vision/segmentation/labels", Image)
        camera = probe.node.create_publisher(Image, "/no_vision/image_raw", 1)
        msg = image_msg(synthetic_frame(48, 64))

        def answered():
            camera.publish(msg)
            return bool(labels)
        assert spin(probe, answered), node.output
        assert np.frombuffer(bytes(labels[0].data), np.uint8).max() < len(NAMES)
        assert not probe.node.get_publishers_info_by_topic("/no_vision/segmentation/label_info")
    finally:
        probe.destroy()
        node.stop()
    said = [line for _, line in node.lines if "vision_msgs is not installed" in line]
    assert len(said) == 1 and "[INFO]" in said[0], node.output
    assert not node.problems(), node.output

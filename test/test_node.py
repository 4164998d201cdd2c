"""The segmentation node, driven through the rclpy stand-in (test/ros_standin).

Node tests need the stand-in's test hooks, so they skip where the real rclpy is
installed (test_segment_launch.py covers the real node there). Checkpoints are tiny
untrained 128x96 models built per session, so nothing waits on the bundled model.
"""
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from canet_ros import image_codec
from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID, generic_class_set
from canet_ros.models import build_canet

try:
    import standin_testing as st
except ImportError:  # real rclpy on this machine: conftest did not add the stand-in
    st = None

NO_STANDIN = ("real rclpy is installed, so the stand-in hooks these tests use are absent; "
              "test_segment_launch.py exercises the real node")
CAMVID_ROOT = Path(os.environ.get(
    "CANET_CAMVID_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"))
OUTPUTS = ("labels", "color", "overlay")
TOPIC = "/camera/image_raw"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "canet_mobilenetv2_tiny.pt"
    return save_checkpoint(path, build_canet("mobilenetv2", 11),
                           build_metadata("mobilenetv2", CAMVID, input_size=(128, 96)))


@pytest.fixture(scope="session")
def reference(checkpoint):
    from canet_ros.inference import SegmentationEngine
    return SegmentationEngine(str(checkpoint), backbone="mobilenetv2", device="cpu")


class Recorder:
    """Wraps an engine: records infer() flags; ``gate`` holds the first call back."""

    def __init__(self, engine, gate=None):
        self._engine, self._gate = engine, gate
        self.calls = []
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, frame, order="rgb", **flags):
        self.calls.append(dict(flags, order=order))
        self.entered.set()
        if self._gate is not None and len(self.calls) == 1:
            assert self._gate.wait(30), "test never released the gate"
        return self._engine.infer(frame, order, **flags)


@pytest.fixture
def ros():
    if st is None:
        pytest.skip(NO_STANDIN)
    import rclpy
    rclpy.init()
    st.clear_logs()
    yield rclpy
    rclpy.try_shutdown()


@pytest.fixture
def make_node(ros, checkpoint):
    from rclpy.parameter import Parameter

    from canet_ros.inference import SegmentationEngine
    from canet_ros.ros.node import SegmentationNode
    nodes = []

    def make(gate=None, subscribe=OUTPUTS, **params):
        values = {"checkpoint": str(checkpoint), "device": "cpu", "stats_period": 60.0, **params}
        node = SegmentationNode(
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
            engine_factory=lambda *a, **k: Recorder(SegmentationEngine(*a, **k), gate))
        nodes.append(node)
        for name in subscribe:
            st.set_fake_subscribers(node, f"segmentation/{name}", 1)
        return node
    yield make
    for node in nodes:
        node.destroy_node()


def frame(height=120, width=160, seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 60, (height, width, 3))
    return np.clip(base + noise + [0, 40, 80], 0, 255).astype(np.uint8)


def image_msg(array, encoding="bgr8", frame_id="cam", stamp=(1_700_000_000, 123_456_789)):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    msg = Image()
    image_codec.fill_image(msg, array, encoding,
                           header=Header(stamp=Time(sec=stamp[0], nanosec=stamp[1]),
                                         frame_id=frame_id))
    return msg


def jpeg_msg(bgr, frame_id="cam"):
    from sensor_msgs.msg import CompressedImage
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    msg = CompressedImage(format="bgr8; jpeg compressed bgr8", data=data.tobytes())
    msg.header.frame_id = frame_id
    msg.header.stamp.sec = 1_700_000_001
    return msg


def outputs(node, count=1, names=OUTPUTS, timeout=30.0):
    assert st.wait_for(lambda: all(len(st.published(node, f"segmentation/{n}")) >= count
                                   for n in names), timeout), "outputs never published"
    return {n: st.published(node, f"segmentation/{n}") for n in names}


def as_array(msg):
    return image_codec.image_to_array(msg)


def check_outputs(node, msg, reference_labels, overlay_encoding):
    out = outputs(node)
    height, width = reference_labels.shape
    for name, encoding in (("labels", "mono8"), ("color", "rgb8"),
                           ("overlay", overlay_encoding)):
        image = out[name][-1]
        assert (image.width, image.height, image.encoding) == (width, height, encoding)
        assert image.header == msg.header  # stamp and frame_id untouched
        assert type(image.data).__name__ == "array"  # array.array('B'), as rclpy wants
    np.testing.assert_array_equal(as_array(out["labels"][-1]), reference_labels)


# -- outputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8"])
def test_raw_image_outputs_match_a_separate_engine(make_node, reference, encoding):
    node = make_node()
    bgr = frame()
    msg = image_msg(bgr if encoding == "bgr8" else bgr[:, :, ::-1].copy(), encoding)
    st.deliver(node, TOPIC, msg)
    check_outputs(node, msg, reference.infer(bgr, "bgr").labels, encoding)


def test_compressed_transport_subscribes_to_compressed_topic(make_node, reference):
    from sensor_msgs.msg import CompressedImage
    node = make_node(input_transport="compressed")
    assert st.subscription_topics(node) == [(TOPIC + "/compressed", CompressedImage)]
    msg = jpeg_msg(frame())
    st.deliver(node, TOPIC + "/compressed", msg)
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    check_outputs(node, msg, reference.infer(decoded, "bgr").labels, "bgr8")


def camvid_frames(count=2):
    folder = CAMVID_ROOT / "val"
    paths = sorted(folder.glob("*.png"))[:count] if folder.is_dir() else []
    if not paths:
        reason = f"CamVid frames not found under {folder} (set CANET_CAMVID_ROOT)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_camvid_frames(make_node, reference, transport):
    frames = camvid_frames()
    node = make_node(input_transport=transport)
    for index, bgr in enumerate(frames):
        st.clear_published(node)
        if transport == "raw":
            msg = image_msg(bgr, frame_id=f"camvid{index}")
            st.deliver(node, TOPIC, msg)
        else:
            msg = jpeg_msg(bgr, frame_id=f"camvid{index}")
            st.deliver(node, TOPIC + "/compressed", msg)
            bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
        assert bgr.shape == (360, 480, 3)
        check_outputs(node, msg, reference.infer(bgr, "bgr").labels, "bgr8")


def test_confidence_only_when_enabled(make_node, reference):
    assert ("/segmentation/confidence" not in
            [t for t, _ in st.publisher_topics(make_node())])
    node = make_node(publish_confidence=True, subscribe=("confidence",))
    bgr = frame()
    st.deliver(node, TOPIC, image_msg(bgr))
    conf = outputs(node, names=("confidence",))["confidence"][0]
    assert conf.encoding == "mono8"
    np.testing.assert_array_equal(as_array(conf),
                                  reference.infer(bgr, "bgr", confidence=True).confidence)
    assert node.engine.calls[-1] == {"color": False, "overlay": False, "confidence": True,
                                     "alpha": None, "order": "bgr"}


def test_mono16_labels_past_255_classes(make_node, tmp_path):
    path = save_checkpoint(tmp_path / "wide.pt", build_canet("mobilenetv2", 300),
                           build_metadata("mobilenetv2", generic_class_set(300, 300),
                                          input_size=(64, 64)))
    node = make_node(checkpoint=str(path), subscribe=("labels",))
    st.deliver(node, TOPIC, image_msg(frame(70, 90)))
    labels = outputs(node, names=("labels",))["labels"][0]
    assert (labels.encoding, labels.step, labels.width) == ("mono16", 180, 90)


# -- scheduling ---------------------------------------------------------------------------
def test_burst_keeps_only_the_latest_frame(make_node):
    gate = threading.Event()
    node = make_node(gate=gate, subscribe=("labels",))
    st.deliver(node, TOPIC, image_msg(frame(), frame_id="f0"))
    assert node.engine.entered.wait(30)
    for index in range(1, 10):  # the worker is busy with f0: these queue in one slot
        st.deliver(node, TOPIC, image_msg(frame(seed=index), frame_id=f"f{index}"))
    gate.set()
    labels = outputs(node, count=2, names=("labels",))["labels"]
    time.sleep(0.2)
    assert [m.header.frame_id for m in st.published(node, "segmentation/labels")] == ["f0", "f9"]
    totals = node.frame_stats.totals()
    assert (totals["received"], totals["dropped"], totals["published"]) == (10, 8, 2)
    assert len(node.engine.calls) == 2 and len(labels) == 2


def test_no_inference_without_subscribers(make_node):
    node = make_node(subscribe=())
    for index in range(3):
        st.deliver(node, TOPIC, image_msg(frame(), frame_id=f"f{index}"))
    time.sleep(0.3)
    assert node.engine.calls == [] and node.frame_stats.totals()["idle"] == 3
    st.set_fake_subscribers(node, "segmentation/color", 1)
    st.deliver(node, TOPIC, image_msg(frame()))
    outputs(node, names=("color",))
    assert node.engine.calls == [{"color": True, "overlay": False, "confidence": False,
                                  "alpha": None, "order": "bgr"}]
    assert st.published(node, "segmentation/labels") == []
    assert st.published(node, "segmentation/overlay") == []


def test_malformed_messages_are_dropped_and_counted(make_node):
    from rclpy.logging import LoggingSeverity
    node = make_node()
    bad_encoding = image_msg(frame())
    bad_encoding.encoding = "theora"
    truncated = image_msg(frame())
    truncated.data = truncated.data[:100]
    for msg in (bad_encoding, truncated):
        st.deliver(node, TOPIC, msg)
        time.sleep(0.2)  # let the worker take each one: otherwise the second replaces the first
    good = image_msg(frame(), frame_id="good")
    st.deliver(node, TOPIC, good)
    assert outputs(node)["labels"][0].header.frame_id == "good"
    assert node.frame_stats.totals()["malformed"] == 2
    warnings = [m for m in st.messages_at_least(LoggingSeverity.WARN) if "unusable image" in m]
    assert len(warnings) == 1, "malformed-frame warnings must be throttled"
    assert "theora" in warnings[0]


def test_pubsub_through_executor_and_real_subscriber(make_node):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    node = make_node(subscribe=())
    camera, received = Node("camera"), []
    camera.create_subscription(Image, "/segmentation/overlay", received.append,
                               qos_profile_sensor_data)
    publisher = camera.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(camera)
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        publisher.publish(image_msg(frame(), encoding="rgb8", frame_id="exec"))
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    camera.destroy_node()
    assert received and received[0].encoding == "rgb8" and received[0].header.frame_id == "exec"
    assert node.engine.calls[0]["overlay"] and not node.engine.calls[0]["color"]

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

"""Shared by the node tests (real rclpy): test models, messages, expected outputs, a probe.

Expected outputs are computed here independently of the node: colours from the class
palette, overlays by blending by hand, labels from a separate engine or ground truth.
The test model is seeded with a large-weight classifier, so its labels vary across a
frame and a decode or channel-order slip changes many of them.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID_ROOT = Path(os.environ.get("CANET_CAMVID_ROOT")
                   or REPO.parent / "shared" / "data" / "camvid")
TOPIC = "/camera/image_raw"
MEAN, STD = (0.40, 0.45, 0.50), (0.25, 0.20, 0.30)  # asymmetric: channel order matters
SEEDED_RESOLUTION = (128, 96)
STAMP = (1_700_000_000, 123_456_789)
CAMVID_VOID = 11


def seeded_checkpoint(path: Path, num_classes: int = 11, size=SEEDED_RESOLUTION) -> Path:
    """Save a mobilenetv2 CANet whose scaled-up classifier gives labels that vary per pixel."""
    import torch

    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID, generic_class_set
    from canet_ros.models import build_canet

    torch.manual_seed(0)
    model = build_canet("mobilenetv2", num_classes).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    classes = CAMVID if num_classes == 11 else generic_class_set(num_classes, num_classes)
    meta = build_metadata("mobilenetv2", classes, mean=MEAN, std=STD, input_size=size)
    return save_checkpoint(path, model, meta)


def synthetic_frame(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """Make a BGR frame with structure in both directions and different channels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 255, yy / height * 255, (xx + yy) % 97 * 2.5], axis=2)
    return np.clip(base + rng.integers(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def image_msg(array: np.ndarray, encoding: str = "bgr8", frame_id: str = "cam",
              stamp=STAMP, pad: int = 0):
    """Make a sensor_msgs/Image; ``pad`` junk bytes end every row (step > width * 3)."""
    from sensor_msgs.msg import Image

    height, width = array.shape[:2]
    row = array.reshape(height, -1)
    step = row.shape[1] + pad
    data = np.full((height, step), 0xCD, np.uint8)
    data[:, :row.shape[1]] = row
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=step,
                data=data.tobytes())
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return msg


def jpeg_msg(bgr: np.ndarray, frame_id: str = "cam", stamp=STAMP):
    from sensor_msgs.msg import CompressedImage

    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    msg = CompressedImage(format="bgr8; jpeg compressed bgr8", data=data.tobytes())
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return msg


def decode_jpeg(msg) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)


def as_array(msg) -> np.ndarray:
    """Image message -> array, read by hand (not through the package's codec)."""
    channels = {"mono8": 1, "rgb8": 3, "bgr8": 3, "mono16": 1}[msg.encoding]
    dtype = np.uint16 if msg.encoding == "mono16" else np.uint8
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    used = rows[:, :msg.width * channels * dtype().itemsize].copy().view(dtype)
    return used.reshape(msg.height, msg.width, channels).squeeze(2) if channels == 1 else \
        used.reshape(msg.height, msg.width, 3)


def palette() -> np.ndarray:
    """Return the CamVid class colours (RGB), as the checkpoints here carry them."""
    from canet_ros.classes import CAMVID
    return np.asarray(CAMVID.colors, np.uint8)


def check_color_and_overlay(labels, color, overlay, frame, order: str, alpha: float) -> None:
    """Check color = palette[labels] (RGB), overlay = round((1-a)*frame + a*colour)."""
    expected_rgb = palette()[labels]
    np.testing.assert_array_equal(color, expected_rgb)
    tint = expected_rgb if order == "rgb" else expected_rgb[..., ::-1]
    exact = (1 - alpha) * frame.astype(np.float64) + alpha * tint.astype(np.float64)
    diff = np.abs(overlay.astype(np.float64) - np.floor(exact + 0.5))
    half = np.isclose(exact - np.floor(exact), 0.5)  # x.5 may round either way
    assert (diff[~half] == 0).all() and (diff[half] <= 1).all(), \
        f"overlay differs from the blend at {int((diff > 0).sum())} values"


def assert_labels_vary(labels: np.ndarray, min_classes: int = 3) -> None:
    """Guard: a test comparing labels must not pass on a constant prediction."""
    counts = np.bincount(labels.ravel())
    assert (counts > 0.02 * labels.size).sum() >= min_classes, counts


def camvid_pairs(count: int, split: str = "val"):
    """[(name, bgr frame, label map)] from CamVid; skips the test where it is absent."""
    folder, annot = CAMVID_ROOT / split, CAMVID_ROOT / f"{split}annot"
    paths = sorted(folder.glob("*.png"))[:count] if folder.is_dir() else []
    if not paths:
        reason = f"CamVid frames not found under {folder} (set CANET_CAMVID_ROOT)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return [(p.name, cv2.imread(str(p), cv2.IMREAD_COLOR),
             cv2.imread(str(annot / p.name), cv2.IMREAD_GRAYSCALE)) for p in paths]


def pixel_accuracy(labels: np.ndarray, truth: np.ndarray) -> float:
    truth = cv2.resize(truth, labels.shape[::-1], interpolation=cv2.INTER_NEAREST)
    valid = truth != CAMVID_VOID
    return float((labels[valid] == truth[valid]).mean())


def spin_until(executor, predicate, timeout: float = 60.0) -> bool:
    """Spin ``executor`` until ``predicate()``; generous default: the machine is shared."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.05)
    return True


def call_service(rig, service_type, name: str, request):
    """Call the service ``name`` from the rig's probe node and return its response."""
    client = rig.probe.node.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=60.0), f"{name} never appeared"
    future = client.call_async(request)
    assert rig.spin_until(future.done)
    rig.probe.node.destroy_client(client)
    return future.result()


def status_log(rig, node):
    """Listen to /diagnostics and rosout; return them and a filter of ``node``'s log lines."""
    from diagnostic_msgs.msg import DiagnosticArray
    rosout = rig.probe.rosout()
    diagnostics = rig.probe.listen("/diagnostics", DiagnosticArray)
    name = node.get_fully_qualified_name().lstrip("/").replace("/", ".")

    def logged(level, words):
        return [m.msg for m in rosout if m.level == level and m.name == name and words in m.msg]
    return diagnostics, logged


def latest_status(diagnostics):
    """Return the newest DiagnosticStatus received, or None before the first."""
    return diagnostics[-1].status[0] if diagnostics else None


class Probe:
    """A test node: subscribes to whatever a test wants to see and keeps every message."""

    def __init__(self, name: str = "probe"):
        from rclpy.node import Node
        self.node = Node(name)
        self.got = {}

    def listen(self, topic: str, msg_type=None, qos=10, keep: int = 0):
        """Collect what arrives on ``topic``; ``keep`` > 0 keeps only the newest that many."""
        if msg_type is None:
            from sensor_msgs.msg import Image as msg_type
        self.got[topic] = received = deque(maxlen=keep) if keep else []
        # A Python function: rclpy inspects the callback's signature, which builtins lack.
        self.node.create_subscription(msg_type, topic, lambda msg: received.append(msg), qos)
        return received

    def rosout(self) -> list:
        """Collect every log message the nodes send to /rosout from now on."""
        from rcl_interfaces.msg import Log
        from rclpy.qos import DurabilityPolicy, QoSProfile
        return self.listen("/rosout", Log, QoSProfile(depth=1000,
                                                      durability=DurabilityPolicy.VOLATILE))

    def destroy(self) -> None:
        self.node.destroy_node()


class Recorder:
    """Wraps an engine: records each infer() call's flags; can hold back or fail calls.

    ``gate`` holds the first call until set; ``fail`` makes the first N calls raise.
    """

    def __init__(self, engine, gate=None, fail: int = 0):
        self._engine, self._gate, self._fail = engine, gate, fail
        self.calls = []
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, frame, order="rgb", **flags):
        # The output buffers the node hands in, by name (their contents are the node's).
        into = {"into": sorted(flags["into"])} if flags.get("into") is not None else {}
        self.calls.append(dict(flags, order=order, **into))
        self.entered.set()
        if self._gate is not None and len(self.calls) == 1:
            assert self._gate.wait(60), "test never released the gate"
        if len(self.calls) <= self._fail:
            raise RuntimeError(f"simulated inference failure {len(self.calls)}")
        return self._engine.infer(frame, order, **flags)


class Rig:
    """Segmentation nodes and a probe in one executor, spun by the test's own thread."""

    _engines: dict = {}  # engines are pure functions of their arguments: share them

    def __init__(self, checkpoint: Path):
        from rclpy.executors import SingleThreadedExecutor
        self.checkpoint = str(checkpoint)
        self.probe = Probe()
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.probe.node)
        self.nodes = []
        self._camera = None

    def engine(self, *args, **kwargs):
        from canet_ros.inference import SegmentationEngine
        key = (args, tuple(sorted(kwargs.items())))
        if key not in self._engines:
            self._engines[key] = SegmentationEngine(*args, **kwargs)
        return self._engines[key]

    def node(self, gate=None, fail: int = 0, cli_args=None, **params):
        from rclpy.parameter import Parameter

        from canet_ros.ros.segmentation import SegmentationNode
        node_name = params.pop("node_name", "segmentation_node")
        # fp32 as the reference engines the tests compare with (the default, auto, may not).
        values = {"checkpoint": self.checkpoint, "device": "cpu", "precision": "fp32",
                  "stats_period": 60.0, **params}
        node = SegmentationNode(
            node_name,
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
            cli_args=cli_args,
            engine_factory=lambda *a, **k: Recorder(self.engine(*a, **k), gate, fail))
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def listen(self, node, *names: str) -> dict:
        """Subscribe the probe to outputs and wait until the node's publishers see it."""
        got = {name: self.probe.listen(node.resolve_topic_name(f"segmentation/{name}"))
               for name in names}
        topics = {node.resolve_topic_name(f"segmentation/{name}") for name in names}
        publishers = [p for p in node.publishers if p.topic_name in topics]
        assert len(publishers) == len(names)
        assert self.spin_until(lambda: all(p.get_subscription_count() for p in publishers))
        return got

    def send(self, node, msg, topic: str = TOPIC) -> None:
        """Publish ``msg`` to the node from the probe, over rclpy as a camera would."""
        from rclpy.qos import qos_profile_sensor_data
        if self._camera is None or self._camera.topic_name != topic:
            self._camera = self.probe.node.create_publisher(type(msg), topic,
                                                            qos_profile_sensor_data)
        camera = self._camera
        assert self.spin_until(lambda: camera.get_subscription_count() > 0)
        camera.publish(msg)

    @staticmethod
    def deliver(node, msg, topic: str = TOPIC) -> None:
        """Run the node's subscription callback now, as the executor would on arrival."""
        subscription, = [s for s in node.subscriptions if s.topic_name == topic]
        subscription.callback(msg)

    def spin_until(self, predicate, timeout: float = 60.0) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def wait_for(self, got: dict, count: int = 1) -> dict:
        assert self.spin_until(lambda: all(len(v) >= count for v in got.values())), \
            {k: len(v) for k, v in got.items()}
        return {k: v[-1] for k, v in got.items()}

    def close(self) -> None:
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        self.probe.destroy()

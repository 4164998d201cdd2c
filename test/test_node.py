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

"""The segmentation node on real rclpy, in-process: outputs, input forms, scheduling, errors.

The node and a probe node share one executor that the test spins. Expected outputs
are worked out independently (ros_helpers): labels by a separate engine on the frame
the test decoded itself, colours from the palette, overlays blended by hand. The test
model (seeded, large classifier weights) gives labels that vary across the frame, so a
channel-order or decode slip in the node changes many of them.
"""
import threading
import time

import numpy as np
import pytest
from ros_helpers import (
    TOPIC,
    as_array,
    assert_labels_vary,
    camvid_pairs,
    check_color_and_overlay,
    decode_jpeg,
    image_msg,
    jpeg_msg,
    seeded_checkpoint,
    synthetic_frame,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
OUTPUTS = ("labels", "color", "overlay")


@pytest.fixture(scope="module")
def reference(seeded):
    """Build a separate engine on the same checkpoint: the node's labels must equal its."""
    from canet_ros.inference import SegmentationEngine
    return SegmentationEngine(str(seeded), device="cpu")


def check_outputs(out, msg, bgr, reference, order):
    """Every output against the input: header, size, encoding, labels, colours, overlay."""
    height, width = bgr.shape[:2]
    encodings = {"labels": "mono8", "color": "rgb8", "overlay": f"{order}8",
                 "confidence": "mono8"}
    for name, image in out.items():
        assert (image.width, image.height, image.encoding) == (width, height, encodings[name])
        assert image.header == msg.header, name  # stamp and frame_id untouched
    labels = reference.infer(bgr, "bgr").labels
    assert_labels_vary(labels)
    # The check can see a channel-order slip: the other order gives other labels.
    assert (reference.infer(bgr, "rgb").labels != labels).mean() > 0.05
    np.testing.assert_array_equal(as_array(out["labels"]), labels)
    frame = bgr if order == "bgr" else bgr[:, :, ::-1]
    check_color_and_overlay(labels, as_array(out["color"]), as_array(out["overlay"]), frame,
                            order, alpha=0.5)


# -- outputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8"])
def test_raw_image_outputs(rig, reference, encoding):
    node = rig.node()
    got = rig.listen(node, *OUTPUTS)
    bgr = synthetic_frame()
    msg = image_msg(bgr if encoding == "bgr8" else np.ascontiguousarray(bgr[:, :, ::-1]),
                    encoding)
    rig.send(node, msg)
    check_outputs(rig.wait_for(got), msg, bgr, reference, encoding[:3])


def test_padded_rows_and_odd_width(rig, reference):
    node = rig.node()
    got = rig.listen(node, *OUTPUTS)
    bgr = synthetic_frame(97, 131, seed=4)
    msg = image_msg(bgr, "bgr8", pad=13)  # step 406 for 393 bytes of pixels
    assert msg.step == 131 * 3 + 13
    rig.send(node, msg)
    check_outputs(rig.wait_for(got), msg, bgr, reference, "bgr")


def test_compressed_input(rig, reference):
    from sensor_msgs.msg import CompressedImage
    node = rig.node(input_transport="compressed")
    subscription, = node.subscriptions
    assert (subscription.topic_name, subscription.msg_type) == (
        TOPIC + "/compressed", CompressedImage)
    got = rig.listen(node, *OUTPUTS)
    msg = jpeg_msg(synthetic_frame(seed=2))
    rig.send(node, msg, TOPIC + "/compressed")
    check_outputs(rig.wait_for(got), msg, decode_jpeg(msg), reference, "bgr")


@pytest.mark.parametrize("rule, topic", [
    # The base topic remapped, as for a raw camera: image_transport's users expect
    # <remapped base>/compressed (image_pipeline PR 851, apriltag_ros issue 29).
    (f"{TOPIC}:=/robot/front/image_raw", "/robot/front/image_raw/compressed"),
    # The full transport name remapped still works.
    (f"{TOPIC}/compressed:=/robot/jpeg", "/robot/jpeg")])
def test_compressed_input_follows_remaps(rig, reference, rule, topic):
    node = rig.node(input_transport="compressed", cli_args=["--ros-args", "-r", rule])
    subscription, = node.subscriptions
    assert subscription.topic_name == topic
    assert f"input {topic} (compressed" in node._ready_message()
    got = rig.listen(node, *OUTPUTS)
    msg = jpeg_msg(synthetic_frame(seed=5))
    rig.send(node, msg, topic)
    check_outputs(rig.wait_for(got), msg, decode_jpeg(msg), reference, "bgr")


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_camvid_frames(rig, reference, transport):
    pairs = camvid_pairs(2)
    node = rig.node(input_transport=transport)
    got = rig.listen(node, *OUTPUTS)
    for index, (_, bgr, _) in enumerate(pairs):
        if transport == "raw":
            msg = image_msg(bgr, frame_id=f"camvid{index}")
            rig.send(node, msg)
        else:
            msg = jpeg_msg(bgr, frame_id=f"camvid{index}")
            rig.send(node, msg, TOPIC + "/compressed")
            bgr = decode_jpeg(msg)
        assert bgr.shape == (360, 480, 3)
        out = rig.wait_for(got, count=index + 1)
        check_outputs(out, msg, bgr, reference, "bgr")


def test_confidence_only_when_enabled(rig, reference):
    plain = rig.node()
    assert "/segmentation/confidence" not in [p.topic_name for p in plain.publishers]
    node = rig.node(node_name="with_confidence", publish_confidence=True)
    got = rig.listen(node, "confidence")
    bgr = synthetic_frame(seed=5)
    rig.send(node, image_msg(bgr))
    confidence = rig.wait_for(got)["confidence"]
    assert confidence.encoding == "mono8"
    expected = reference.infer(bgr, "bgr", confidence=True).confidence
    assert len(np.unique(expected)) > 10  # a constant map would prove little
    np.testing.assert_array_equal(as_array(confidence), expected)
    # Written straight into the wanted output message's buffer (image_codec.image_buffer).
    assert node.engine.calls[-1] == {"color": False, "overlay": False, "confidence": True,
                                     "alpha": None, "order": "bgr", "into": ["confidence"]}


def test_mono16_labels_past_255_classes(rig, tmp_path):
    from canet_ros.inference import SegmentationEngine
    path = seeded_checkpoint(tmp_path / "wide.pt", num_classes=300, size=(64, 64))
    node = rig.node(checkpoint=str(path))
    got = rig.listen(node, "labels")
    bgr = synthetic_frame(70, 90, seed=6)
    rig.send(node, image_msg(bgr))
    labels = rig.wait_for(got)["labels"]
    assert (labels.encoding, labels.step, labels.width) == ("mono16", 180, 90)
    expected = SegmentationEngine(str(path), device="cpu").infer(bgr, "bgr").labels
    assert expected.max() > 255
    np.testing.assert_array_equal(as_array(labels), expected)


# -- scheduling ---------------------------------------------------------------------------
def test_burst_keeps_only_the_latest_frame(rig):
    gate = threading.Event()
    node = rig.node(gate=gate)
    got = rig.listen(node, "labels")["labels"]
    rig.deliver(node, image_msg(synthetic_frame(), frame_id="f0"))
    assert node.engine.entered.wait(60)
    for index in range(1, 10):  # the worker is busy with f0: these share one slot
        rig.deliver(node, image_msg(synthetic_frame(seed=index), frame_id=f"f{index}"))
    gate.set()
    assert rig.spin_until(lambda: len(got) >= 2)
    rig.spin_until(lambda: False, timeout=0.3)  # anything more would show up now
    assert [m.header.frame_id for m in got] == ["f0", "f9"]
    totals = node.frame_stats.totals()
    assert (totals["received"], totals["dropped"], totals["published"]) == (10, 8, 2)
    assert len(node.engine.calls) == 2


def test_a_frame_outlasting_the_shutdown_wait_is_dropped_quietly(rig, monkeypatch, capfd):
    from canet_ros.ros import segmentation
    monkeypatch.setattr(segmentation, "WORKER_JOIN_TIMEOUT_S", 0.2)
    gate = threading.Event()
    node = rig.node(gate=gate)
    rig.listen(node, "labels")
    rig.deliver(node, image_msg(synthetic_frame(), frame_id="f0"))
    assert node.engine.entered.wait(60)
    worker = node._worker
    rig.executor.remove_node(node)
    rig.nodes.remove(node)
    node.destroy_node()  # gives up waiting for the frame after 0.2 s
    gate.set()  # the frame then finishes, with the node's publishers destroyed
    worker.join(60)
    assert not worker.is_alive()
    assert node.frame_stats.totals()["failed"] == 0
    err = capfd.readouterr().err
    assert "its frame is dropped" in err and "segmentation failed" not in err


def test_outputs_nobody_listens_to_are_not_computed(rig):
    node = rig.node()
    for index in range(3):
        rig.deliver(node, image_msg(synthetic_frame(), frame_id=f"f{index}"))
    time.sleep(0.3)
    assert node.engine.calls == [] and node.frame_stats.totals()["idle"] == 3
    got = rig.listen(node, "color")
    rig.deliver(node, image_msg(synthetic_frame()))
    rig.wait_for(got)
    assert node.engine.calls == [{"color": True, "overlay": False, "confidence": False,
                                  "alpha": None, "order": "bgr", "into": ["color"]}]


def _wait_counter(rig, node, counter, value):
    assert rig.spin_until(lambda: node.frame_stats.totals()[counter] >= value), \
        node.frame_stats.totals()


def _logged(rosout, level, words):
    return [m.msg for m in rosout if m.level == level and words in m.msg]


def test_malformed_messages_are_dropped_counted_and_logged_once(rig):
    from rcl_interfaces.msg import Log
    node = rig.node()
    rosout = rig.probe.rosout()
    got = rig.listen(node, *OUTPUTS)
    bad_encoding = image_msg(synthetic_frame())
    bad_encoding.encoding = "theora"
    truncated = image_msg(synthetic_frame())
    truncated.data = truncated.data[:100]
    for count, msg in enumerate((bad_encoding, truncated), start=1):
        rig.deliver(node, msg)
        _wait_counter(rig, node, "malformed", count)  # else the second replaces the first
    good = image_msg(synthetic_frame(), frame_id="good")
    rig.deliver(node, good)
    assert rig.wait_for(got)["labels"].header.frame_id == "good"
    assert rig.spin_until(lambda: _logged(rosout, Log.WARN, "unusable image"))
    rig.spin_until(lambda: False, timeout=0.5)
    warnings = _logged(rosout, Log.WARN, "unusable image")
    assert len(warnings) == 1 and "theora" in warnings[0], "warnings must be throttled"
    assert node.frame_stats.totals()["malformed"] == 2


def test_failed_inference_is_logged_counted_and_survived(rig):
    from rcl_interfaces.msg import Log
    node = rig.node(fail=3)
    rosout = rig.probe.rosout()
    got = rig.listen(node, *OUTPUTS)
    for count in range(1, 4):
        rig.deliver(node, image_msg(synthetic_frame(seed=count), frame_id=f"bad{count}"))
        _wait_counter(rig, node, "failed", count)
    rig.deliver(node, image_msg(synthetic_frame(), frame_id="after"))
    assert rig.wait_for(got)["overlay"].header.frame_id == "after"
    assert [m.header.frame_id for m in got["labels"]] == ["after"]  # failed frames: nothing
    assert rig.spin_until(lambda: _logged(rosout, Log.ERROR, "segmentation failed"))
    rig.spin_until(lambda: False, timeout=0.5)
    errors = _logged(rosout, Log.ERROR, "segmentation failed")
    assert len(errors) == 1 and "simulated inference failure 1" in errors[0]
    totals = node.frame_stats.totals()
    assert (totals["failed"], totals["published"]) == (3, 1) and node.worker_alive

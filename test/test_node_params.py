"""The segmentation node's parameters, diagnostics and main(), through the rclpy stand-in.

Fixtures and message helpers come from test_node.py; these tests skip where the real
rclpy is installed, as those do.
"""
import threading
import time
from pathlib import Path

import pytest
import test_node
import torch
from test_node import NO_STANDIN, TOPIC, frame, image_msg, outputs, st

# test_node.py's fixtures, bound here so pytest finds them (importing them trips F811)
checkpoint, make_node, ros = test_node.checkpoint, test_node.make_node, test_node.ros


# -- parameters ---------------------------------------------------------------------------
def test_parameters_qos_and_teardown(make_node):
    from rclpy.qos import HistoryPolicy, ReliabilityPolicy

    from canet_ros.ros.params import SPECS
    node = make_node()
    for spec in SPECS:
        descriptor = node.describe_parameter(spec.name)
        assert descriptor.description and descriptor.read_only == spec.read_only
    alpha = node.describe_parameter("overlay_alpha").floating_point_range[0]
    assert (alpha.from_value, alpha.to_value) == (0.0, 1.0)
    assert node.describe_parameter("stats_period").floating_point_range
    qos = st.subscription_qos(node, TOPIC)
    assert (qos.reliability, qos.history, qos.depth) == (
        ReliabilityPolicy.BEST_EFFORT, HistoryPolicy.KEEP_LAST, 1)
    qos = st.subscription_qos(make_node(qos_reliability="reliable"), TOPIC)
    assert (qos.reliability, qos.depth) == (ReliabilityPolicy.RELIABLE, 1)
    worker = node._worker
    node.destroy_node()
    assert not worker.is_alive() and node.engine is None
    node.destroy_node()  # idempotent


def test_runtime_parameter_changes(make_node):
    from rclpy.parameter import Parameter
    node = make_node(subscribe=("overlay",))
    ok = node.set_parameters([Parameter("overlay_alpha", value=0.8)])[0]
    assert ok.successful and node.get_parameter("overlay_alpha").value == 0.8
    st.deliver(node, TOPIC, image_msg(frame()))
    outputs(node, names=("overlay",))
    assert node.engine.calls[-1]["alpha"] == 0.8
    for name, value, words in (("overlay_alpha", 1.5, "range"),
                               ("overlay_alpha", "high", "type"),
                               ("backbone", "resnet18", "read-only"),
                               ("resolution", "64x64", "read-only")):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and words in result.reason, (name, result.reason)
    assert node.get_parameter("overlay_alpha").value == 0.8
    assert node.set_parameters([Parameter("use_sim_time", value=False)])[0].successful


def test_stats_timer_logs_and_publishes_diagnostics(make_node):
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.logging import LoggingSeverity
    node = make_node()
    st.deliver(node, TOPIC, image_msg(frame()))
    outputs(node)
    assert st.fire_timers(node) == 1
    status, = st.published(node, "/diagnostics")[0].status
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and status.hardware_id
    assert values["published_total"] == "1" and values["resolution"] == "128x96"
    assert float(values["stamp_to_publish_p50_ms"]) > 0
    assert float(values["callback_to_publish_p99_ms"]) > 0
    assert any("out " in m and "fps" in m for m in st.messages_at_least(LoggingSeverity.INFO))
    bad = image_msg(frame())
    bad.encoding = "bogus"
    st.deliver(node, TOPIC, bad)
    assert st.wait_for(lambda: node.frame_stats.totals()["malformed"] == 1)
    st.fire_timers(node)
    assert st.published(node, "/diagnostics")[1].status[0].level == DiagnosticStatus.WARN


# -- main() -------------------------------------------------------------------------------
def run_main(checkpoint, *params, files=(), remaps=()):
    from rclpy.logging import LoggingSeverity

    from canet_ros.ros.node import main
    args = ["segmentation_node", "--ros-args"]
    for path in files:
        args += ["--params-file", str(path)]
    for param in ("device:=cpu",) + ((f"checkpoint:={checkpoint}",) if checkpoint else ()) + params:
        args += ["-p", param]
    for remap in remaps:
        args += ["-r", remap]
    st.clear_logs()
    code = main(args)
    return code, "\n".join(st.messages_at_least(LoggingSeverity.FATAL))


CONFIG = Path(__file__).resolve().parents[1] / "config"


@pytest.mark.parametrize("params, words", [
    (("resolution:=abc",), "WIDTHxHEIGHT"),
    (("resolution:=16x16",), "resolution"),
    (("backbone:=resnet18",), "resnet18"),
    (("overlay_alpha:=2.0",), "overlay_alpha"),
    (("precision:=fp16",), "fp16"),
    (("input_transport:=theora",), "input_transport"),
    (("device:=cuda",), "CUDA"),
])
def test_main_exits_nonzero_on_bad_configuration(checkpoint, params, words):
    if st is None:
        pytest.skip(NO_STANDIN)
    if params == ("device:=cuda",) and torch.cuda.is_available():
        pytest.skip("CUDA is available here, so device:=cuda is not an error")
    code, fatal = run_main(checkpoint, *params)
    assert code == 1 and words in fatal, fatal


def test_main_resnet_config_needs_a_checkpoint():
    if st is None:
        pytest.skip(NO_STANDIN)
    code, fatal = run_main("", files=[CONFIG / "canet_resnet18.yaml"])
    assert code == 1 and "checkpoint" in fatal and "resnet18" in fatal


def test_main_runs_until_shutdown(checkpoint):
    if st is None:
        pytest.skip(NO_STANDIN)
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=run_main(
        checkpoint, "resolution:=128x96", files=[CONFIG / "canet_mobilenetv2.yaml"],
        remaps=["__ns:=/cam_front"])[0]))
    thread.start()
    assert st.wait_for(rclpy.ok, 30)
    probe, got = Node("probe"), []
    probe.create_subscription(Image, "/cam_front/segmentation/labels", got.append, 10)
    publisher = probe.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        publisher.publish(image_msg(frame(), frame_id="main"))
        rclpy.spin_once(probe, timeout_sec=0.1)
    probe.destroy_node()
    rclpy.shutdown()
    thread.join(30)
    assert got and got[0].header.frame_id == "main" and result == {"code": 0}


def test_main_handles_ctrl_c(checkpoint, monkeypatch):
    if st is None:
        pytest.skip(NO_STANDIN)
    import rclpy

    from canet_ros.ros import node as node_module
    destroyed = []
    monkeypatch.setattr(node_module.SingleThreadedExecutor, "spin",
                        lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
    monkeypatch.setattr(node_module.SegmentationNode, "destroy_node",
                        lambda self, real=node_module.SegmentationNode.destroy_node:
                        destroyed.append(real(self)))
    assert run_main(checkpoint)[0] == 0
    assert destroyed and not rclpy.ok()

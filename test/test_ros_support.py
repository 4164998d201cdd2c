"""The node's statistics, and the rclpy stand-in's fidelity to the rules of real rclpy."""
import numpy as np
import pytest


def test_frame_stats_window_and_percentiles():
    from canet_ros.ros.stats import FrameStats, percentile
    samples = [0.5, 3.0, 1.0, 10.0, 2.0]
    for q in (0, 50, 90, 99, 100):
        assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))
    clock = iter([0.0, 2.0, 3.0]).__next__
    stats = FrameStats(clock=clock)
    for latency in (0.010, 0.020, 0.030):
        stats.count("received")
        stats.published(latency, stamp_latency_s=latency * 2)
    stats.count("dropped", 2)
    report = stats.report()
    assert (report.period_s, report.input_fps, report.output_fps) == (2.0, 1.5, 1.5)
    assert report.callback_latency_ms == pytest.approx((20.0, 29.8))
    assert all(isinstance(v, str) for _, v in report.key_values())
    empty = stats.report()
    assert empty.window["received"] == 0 and empty.totals["dropped"] == 2
    assert empty.stamp_latency_ms is None and "n/a" in empty.summary()


def test_standin_enforces_rclpy_rules():
    try:
        import standin_testing  # noqa: F401
    except ImportError:
        pytest.skip("real rclpy is installed: there is no stand-in to check")
    import rclpy
    rclpy.init()
    try:
        _check_standin_rules()
    finally:
        rclpy.try_shutdown()


def _check_standin_rules():
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
    from rclpy.exceptions import ParameterAlreadyDeclaredException, ParameterNotDeclaredException
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    node = Node("rules")
    node.declare_parameter("x", 1.0, ParameterDescriptor())
    with pytest.raises(ParameterAlreadyDeclaredException):
        node.declare_parameter("x", 2.0)
    with pytest.raises(ParameterNotDeclaredException):
        node.get_parameter("y")
    node.add_on_set_parameters_callback(
        lambda params: SetParametersResult(successful=False, reason="vetoed"))
    assert node.set_parameters([Parameter("x", value=3.0)])[0].reason == "vetoed"
    with pytest.raises(AssertionError):
        Image().data = np.zeros(4, np.uint8)  # rclpy wants array.array('B'), bytes or a list
    with pytest.raises(AssertionError):
        Image(width=1.0)

    def log(severity):  # one call site, two severities: rclpy raises
        getattr(node.get_logger(), severity)("same line")
    log("info")
    with pytest.raises(ValueError):
        log("error")
    node.destroy_node()

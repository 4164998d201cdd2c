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

"""What an operator reads of a running node: which model, how late, who cannot listen, totals.

The checkpoint is named by a hash of its bytes (computed here with hashlib, as sha256sum
would); stamps far from the node's clock are counted, not put into the latency; a reader
whose QoS the outputs cannot serve is named; a stop ends with the life totals. In-process
on real rclpy, as test_node_params.py.
"""
import hashlib
import json
import shutil

import pytest
from ros_helpers import image_msg, seeded_checkpoint, synthetic_frame

from canet_ros.ros.stamp_check import (
    IN_RANGE,
    NO_CLOCK,
    OUT_OF_RANGE,
    UNSTAMPED,
    out_of_range_warning,
    stamp_age,
)
from canet_ros.ros.stats import FrameStats

pytestmark = pytest.mark.usefixtures("one_torch_thread")
S = 1_000_000_000  # nanoseconds


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _logged(rosout, level, words):
    return [m.msg for m in rosout if m.level == level and words in m.msg]


# -- which checkpoint runs ----------------------------------------------------------------
def test_a_cached_start_hands_its_digest_on_and_the_node_hashes_no_more(
        seeded, tmp_path, monkeypatch):
    # The engine hashes the file to find its cached export; the node used to hash it again
    # (~0.4 s for a ResNet101 file at every start).
    from canet_ros.inference import SegmentationEngine
    from canet_ros.ros import node_report
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    SegmentationEngine(str(seeded), device="cpu", precision="fp32", warmup=False)  # exports
    engine = SegmentationEngine(str(seeded), device="cpu", precision="fp32", warmup=False)
    assert engine.checkpoint_digest == _sha256(seeded)[:32]

    def hashed(path):
        raise AssertionError(f"{path} hashed a second time")

    monkeypatch.setattr(node_report, "file_digest", hashed)
    assert node_report.checkpoint_digest(engine.checkpoint_path,
                                         engine.checkpoint_digest) == _sha256(seeded)[:12]


def test_two_files_at_one_path_give_different_ready_lines_and_diagnostics(rig, seeded, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    path = tmp_path / "model.pt"
    shutil.copy(seeded, path)
    rig.checkpoint = str(path)
    diagnostics = rig.probe.listen("/diagnostics", DiagnosticArray)
    first = rig.node(node_name="first", stats_period=0.3)
    first_hash = _sha256(path)[:12]
    assert f"(11 classes, camvid) from {path} (sha256 {first_hash})" in first._ready_message()

    def values_of(name):
        for array in reversed(diagnostics):
            status, = array.status
            if status.name.startswith(f"/{name}:"):
                return {kv.key: kv.value for kv in status.values}
        return None
    assert rig.spin_until(lambda: values_of("first") is not None)
    values = values_of("first")
    assert (values["checkpoint"], values["checkpoint_sha256"], values["num_classes"],
            values["class_set"]) == (str(path), first_hash, "11", "camvid")
    seeded_checkpoint(path, num_classes=5)  # retrained, copied over the old file
    second_hash = _sha256(path)[:12]
    assert second_hash != first_hash
    # The rig shares engines by their arguments: the same path must load the new file.
    for key in [key for key in rig._engines if key[0][:1] == (str(path),)]:
        del rig._engines[key]
    second = rig.node(node_name="second")
    assert "(5 classes, " in second._ready_message()  # the new file runs, not the old
    assert f"(sha256 {second_hash})" in second._ready_message()


def test_canet_info_prints_the_same_hash(capsys, seeded):
    from canet_ros.cli import main
    digest = _sha256(seeded)
    assert main(["info", "--checkpoint", str(seeded)]) == 0
    assert f"checkpoint: {seeded} (sha256 {digest[:12]})" in capsys.readouterr().out
    assert main(["info", "--checkpoint", str(seeded), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sha256"] == digest


# -- stamps ---------------------------------------------------------------------------------
def test_stamp_ages_are_classified_against_the_documented_window():
    now = 1_765_000_000 * S
    assert stamp_age(0, now) == (UNSTAMPED, None)
    assert stamp_age(now, 0) == (NO_CLOCK, None)  # use_sim_time before /clock
    assert stamp_age(now + S // 2, now) == (IN_RANGE, -0.5)  # NTP jitter, a bag clock's step
    assert stamp_age(now - 29 * S, now) == (IN_RANGE, 29.0)
    assert stamp_age(now + 2 * S, now) == (OUT_OF_RANGE, -2.0)
    assert stamp_age(now - 3600 * S, now) == (OUT_OF_RANGE, 3600.0)
    booted = out_of_range_warning(1_764_999_900.0, 100 * S, sim_time=False)
    assert "100.0 s after 1970" in booted and "since it booted" in booted
    assert "simulated clock" in out_of_range_warning(-4000.0, 5000 * S, sim_time=True)


def test_the_summary_says_unstamped_and_out_of_range():
    stats = FrameStats(clock=iter([0.0, 1.0, 1.0, 2.0]).__next__)
    stats.count("unstamped")
    stats.published(0.01, None)
    assert "stamp->publish p50/p99 n/a (unstamped), " in stats.report().summary()
    stats.count("stamp_out_of_range", 2)
    stats.published(0.01, 0.02)
    report = stats.report()
    assert "stamp->publish p50/p99 20.0/20.0 ms (2 stamps out of range), " in report.summary()
    assert dict(report.key_values())["stamp_out_of_range_window"] == "2"


def test_stamps_far_from_the_clock_are_counted_and_warned_not_sampled(rig):
    from rcl_interfaces.msg import Log
    node = rig.node()
    rosout = rig.probe.rosout()
    got = rig.listen(node, "labels")
    sec, nsec = node.get_clock().now().seconds_nanoseconds()
    stamps = [(sec - 3600, nsec), (sec + 3600, nsec), (100, 0), (0, 0), (sec, nsec)]
    for count, stamp in enumerate(stamps, 1):
        rig.send(node, image_msg(synthetic_frame(seed=count), stamp=stamp))
        rig.wait_for(got, count)
    assert rig.spin_until(lambda: node.frame_stats.totals()["published"] == len(stamps))
    report = node.frame_stats.report()
    assert (report.window["stamp_out_of_range"], report.window["unstamped"]) == (3, 1)
    p50, p99 = report.stamp_latency_ms  # the one frame stamped now, alone
    assert p50 == p99 and p50 < 3_600_000
    assert rig.spin_until(lambda: _logged(rosout, Log.WARN, "header stamps are"))
    warned = _logged(rosout, Log.WARN, "header stamps are")
    assert len(warned) == 1 and warned[0].startswith("header stamps are 3600.")
    assert "behind this node's clock" in warned[0] and "--clock" in warned[0]


def test_under_sim_time_stamps_far_from_clock_are_named_against_it(rig):
    from rcl_interfaces.msg import Log
    from rclpy.clock import ClockType
    from rclpy.time import Time
    node = rig.node(use_sim_time=True)
    node.get_clock().set_ros_time_override(Time(seconds=5000, clock_type=ClockType.ROS_TIME))
    rosout = rig.probe.rosout()
    got = rig.listen(node, "labels")
    rig.send(node, image_msg(synthetic_frame(), stamp=(1000, 0)))
    rig.wait_for(got)
    assert rig.spin_until(lambda: node.frame_stats.totals()["published"] == 1)
    assert node.frame_stats.report().window["stamp_out_of_range"] == 1
    assert rig.spin_until(lambda: _logged(rosout, Log.WARN, "4000.0 s behind the simulated"))


# -- readers the outputs cannot serve ---------------------------------------------------------
def test_the_qos_rule_names_what_a_reader_asks_for():
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from canet_ros.ros.output_readers import mismatch
    assert mismatch(QoSProfile(depth=10)) is None
    assert mismatch(QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)) is None
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    assert mismatch(latched).startswith("transient_local durability")
    assert "a deadline" in mismatch(QoSProfile(depth=1, deadline=Duration(seconds=1)))


def test_an_incompatible_reader_is_named_and_idle_frames_say_matched(rig):
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    node = rig.node(stats_period=0.3)
    rosout = rig.probe.rosout()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    rig.probe.listen("/segmentation/labels", qos=latched)
    words = "/probe subscribes to /segmentation/labels asking for transient_local durability"
    assert rig.spin_until(lambda: _logged(rosout, Log.WARN, words), timeout=60), \
        [m.msg for m in rosout]
    rig.send(node, image_msg(synthetic_frame()))
    assert rig.spin_until(lambda: _logged(rosout, Log.INFO, "idle 1 (no matched subscribers)"))
    assert len(_logged(rosout, Log.WARN, words)) == 1  # once while it lasts


# -- stopping -------------------------------------------------------------------------------
def test_a_stop_logs_the_life_totals_after_the_worker_ended(rig):
    node = rig.node()
    rosout = rig.probe.rosout()
    got = rig.listen(node, "labels")
    rig.send(node, image_msg(synthetic_frame()))
    rig.wait_for(got)
    assert rig.spin_until(lambda: node.frame_stats.totals()["published"] == 1)
    rig.executor.remove_node(node)
    node.destroy_node()
    words = "stopped: received 1, published 1, dropped 0, idle 0, malformed 0, failed 0 over"
    assert rig.spin_until(lambda: any(words in m.msg for m in rosout), timeout=30), \
        [m.msg for m in rosout]


def test_the_qos_rule_reads_rmws_infinity_and_both_liveliness_cases():
    # The graph reports an infinite deadline and lease as 2**63 - 1 ns: a default reader
    # (rviz) must not be named as asking for either.
    from rclpy.duration import Duration
    from rclpy.qos import LivelinessPolicy, QoSProfile

    from canet_ros.ros.output_readers import mismatch
    infinite = Duration(nanoseconds=2 ** 63 - 1)
    assert mismatch(QoSProfile(depth=10, deadline=infinite,
                               liveliness_lease_duration=infinite)) is None
    assert "manual_by_topic" in mismatch(QoSProfile(
        depth=1, liveliness=LivelinessPolicy.MANUAL_BY_TOPIC))
    assert "liveliness lease" in mismatch(QoSProfile(
        depth=1, liveliness_lease_duration=Duration(seconds=2)))


def test_a_wall_clock_stamp_off_the_clock_is_not_called_time_since_boot():
    from canet_ros.ros.stamp_check import out_of_range_warning
    wall = 1_764_999_900 * 10 ** 9  # December 2025: a real clock, an hour off
    assert "booted" not in out_of_range_warning(3600.0, wall, sim_time=False)
    assert "booted" in out_of_range_warning(3600.0, 100 * 10 ** 9, sim_time=False)

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

"""A camera that stops, goes away or changes its frames: the node says which, as it happens.

A stalled camera (still in the graph, no frames) used to leave /diagnostics OK with only
``in 0.0 fps``; a camera process that ended got the advice for a misnamed topic; a new
frame size or encoding went unsaid. The rules are read without ROS first, then a node is
driven over DDS in-process as in test_node_input_diagnosis.py.
"""
import pytest
from ros_helpers import TOPIC, image_msg, latest_status, status_log, synthetic_frame

from canet_ros.ros.input_format import InputFormat
from canet_ros.ros.input_watch import IMAGE, Endpoint, InputWatch, InputWiring, diagnose

RAW = InputWiring(TOPIC, TOPIC, compressed=False, reliable=False)


# -- the rules ----------------------------------------------------------------------------
def test_a_stall_after_frames_is_warned_once_a_minute_and_its_end_said():
    now = [0.0]
    watch = InputWatch(RAW, clock=lambda: now[0], grace_s=4.0, repeat_s=60.0, stall_s=5.0)

    def look(received, last_frame=None):
        line = watch.check(received, lambda wiring: None, last_frame)  # the camera is there
        return None if line is None else (line.warn, line.text)

    for now[0] in (5.0, 20.0, 100.0):  # before the first frame ever: input_watch's case
        assert look(0) is None and watch.problem is None
    now[0] = 101.0
    assert look(7, last_frame=100.5) is None  # frames flow
    now[0] = 104.0
    assert look(7, last_frame=100.5) is None  # 3.5 s: less than a window
    now[0] = 108.0
    warned = look(7, last_frame=100.5)
    assert warned == (True, f"no frames from {TOPIC} for 8 s (7 received before); its "
                            "publisher is still there: is the camera streaming?")
    assert watch.problem.message == warned[1]
    for now[0] in (120.0, 167.9):
        assert look(7, last_frame=100.5) is None and watch.problem is not None
    now[0] = 168.5
    assert look(7, last_frame=100.5)[0] is True  # a minute on: said again
    now[0] = 170.0
    assert look(8, last_frame=169.9) == (False, f"frames arrive on {TOPIC} now")
    assert watch.problem is None


def test_a_camera_slower_than_the_window_is_not_warned_about_at_every_frame():
    # 0.1 Hz under the default 5 s window: a WARN and an INFO every 10 s, for ever, before.
    now = [0.0]
    watch = InputWatch(RAW, clock=lambda: now[0], grace_s=4.0, repeat_s=60.0, stall_s=5.0)
    lines, received = [], 0
    for step in range(1, 25):  # a look every 5 s for two minutes, a frame every 10 s
        now[0] = step * 5.0
        if step % 2:
            received += 1
        line = watch.check(received, lambda wiring: None, now[0] - 0.5 if step % 2 else None)
        lines += [line] if line is not None else []
    # At most the first gap, before the camera's pace is known, and its all-clear.
    assert [line.warn for line in lines] in ([], [True, False])
    # Its own pace still tells a stall: three of its intervals without a frame.
    for now[0] in (125.0, 130.0, 135.0, 140.0, 145.0):
        line = watch.check(received, lambda wiring: None)
    assert watch.problem is not None and "is the camera streaming?" in watch.problem.message


def test_a_publisher_gone_after_frames_is_not_a_misnamed_topic():
    left = diagnose(RAW, [], ["/front/image_raw"], received_before=42)
    assert left.message == (f"no frames: the publisher(s) of {TOPIC} left the ROS graph (42 "
                            "frames received before); is the camera driver still running?")
    assert "image_topic:=" not in left.message
    never = diagnose(RAW, [], ["/front/image_raw"])
    assert "image_topic:=" in never.message and never.key != left.key
    # A publisher still there with the right type: no problem from the graph.
    assert diagnose(RAW, [Endpoint("/cam", IMAGE, True)], received_before=42) is None


def test_input_format_is_said_first_on_change_and_a_stretch_once():
    fmt = InputFormat(TOPIC, (480, 360))  # 4:3
    assert fmt.key_values() == [("input_size", "n/a"), ("input_encoding", "n/a")]
    assert fmt.see(640, 480, "bgr8") == [f"input: 640x480 bgr8 frames on {TOPIC}"]
    assert fmt.see(640, 480, "bgr8") == []
    lines = fmt.see(1920, 1080, "rgb8")  # 16:9 against 4:3: 33 % wider
    assert lines[0] == "input now 1920x1080 rgb8 (was 640x480 bgr8)"
    assert len(lines) == 2 and "stretched" in lines[1] and "480x360" in lines[1], lines
    assert fmt.see(1280, 720, "rgb8") == ["input now 1280x720 rgb8 (was 1920x1080 rgb8)"]
    assert fmt.key_values() == [("input_size", "1280x720"), ("input_encoding", "rgb8")]
    # Within 5 %: no note.
    assert len(InputFormat(TOPIC, (480, 360)).see(500, 360, "mono8")) == 1


# -- over DDS -------------------------------------------------------------------------------
@pytest.mark.usefixtures("one_torch_thread")
def test_a_stalled_camera_gives_a_warn_status_and_frames_again_give_ok(rig):
    from diagnostic_msgs.msg import DiagnosticStatus
    from rcl_interfaces.msg import Log
    node = rig.node(stats_period=0.4)
    diagnostics, logged = status_log(rig, node)
    got = rig.listen(node, "labels")
    for count in (1, 2):
        rig.send(node, image_msg(synthetic_frame(seed=count)))
        rig.wait_for(got, count)
    # The camera's publisher stays in the graph (the rig keeps it), but sends nothing more.
    words = f"no frames from {TOPIC} for "
    assert rig.spin_until(lambda: logged(Log.WARN, words), timeout=60), \
        [m.msg for m in rig.probe.got["/rosout"]]
    assert "(2 received before); its publisher is still there" in logged(Log.WARN, words)[0]
    assert rig.spin_until(lambda: words in getattr(latest_status(diagnostics), "message", ""))
    assert latest_status(diagnostics).level == DiagnosticStatus.WARN
    reports = len(diagnostics)
    assert rig.spin_until(lambda: len(diagnostics) >= reports + 4)
    assert len(logged(Log.WARN, words)) == 1  # once, not every report
    rig.send(node, image_msg(synthetic_frame(seed=3)))
    assert rig.spin_until(lambda: logged(Log.INFO, f"frames arrive on {TOPIC} now"))
    assert rig.spin_until(lambda: latest_status(diagnostics).level == DiagnosticStatus.OK)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_camera_that_leaves_after_frames_is_asked_about_not_renamed(rig):
    from rcl_interfaces.msg import Log
    node = rig.node(stats_period=0.4)
    _, logged = status_log(rig, node)
    got = rig.listen(node, "labels")
    rig.send(node, image_msg(synthetic_frame()))
    rig.wait_for(got)
    rig.probe.node.destroy_publisher(rig._camera)  # the camera process ended
    words = f"the publisher(s) of {TOPIC} left the ROS graph (1 frames received before)"
    assert rig.spin_until(lambda: logged(Log.WARN, words), timeout=60), \
        [m.msg for m in rig.probe.got["/rosout"]]
    assert not logged(Log.WARN, "image_topic:=")


@pytest.mark.usefixtures("one_torch_thread")
def test_the_input_format_is_logged_and_on_diagnostics(rig):
    from rcl_interfaces.msg import Log
    node = rig.node(stats_period=0.3)  # the seeded model runs at 128x96 (4:3)
    diagnostics, logged = status_log(rig, node)
    got = rig.listen(node, "labels")
    rig.send(node, image_msg(synthetic_frame(120, 160)))
    rig.wait_for(got)
    assert rig.spin_until(lambda: logged(Log.INFO, f"input: 160x120 bgr8 frames on {TOPIC}"))
    rgb = synthetic_frame(90, 160)[..., ::-1].copy()  # 16:9 now, and rgb8
    rig.send(node, image_msg(rgb, encoding="rgb8"))
    rig.wait_for(got, 2)
    assert rig.spin_until(lambda: logged(Log.INFO, "input now 160x90 rgb8 (was 160x120 bgr8)"))
    assert rig.spin_until(lambda: logged(Log.INFO, "stretched"))

    def latest():
        status = latest_status(diagnostics)
        return {} if status is None else {kv.key: kv.value for kv in status.values}
    assert rig.spin_until(lambda: latest().get("input_size") == "160x90")
    assert latest()["input_encoding"] == "rgb8"


def test_a_camera_narrower_than_the_network_is_noted_as_stretched_too():
    # 4:3 into the paper's 1024x512 (2:1): the common case, the other side of the ratio.
    lines = InputFormat(TOPIC, (1024, 512)).see(640, 480, "bgr8")
    assert len(lines) == 2 and "stretched" in lines[1]


def test_a_slow_camera_whose_frames_come_a_little_late_is_no_stall():
    now = [0.0]
    watch = InputWatch(RAW, clock=lambda: now[0], grace_s=4.0, repeat_s=60.0, stall_s=5.0)
    frames = [10.0 * k + (0.8 if k % 3 == 0 else 0.0) for k in range(1, 13)]  # 0.1 Hz
    lines, received = [], 0
    for step in range(1, 25):
        now[0] = step * 5.0
        new = [t for t in frames if now[0] - 5.0 < t <= now[0]]
        received += len(new)
        line = watch.check(received, lambda wiring: None, new[-1] if new else None)
        if line is not None and now[0] > 20.0:  # once its pace is known
            lines.append(line)
    assert lines == []

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

"""An input wired wrong says so: the node names its topic and what is wrong with it.

A segnet user's ``-r image_in:=...`` matches nothing in this node, a CompressedImage on
the raw topic never matches, a best-effort camera gives a reliable reader nothing: all
used to end in ``in 0.0 fps`` and an OK /diagnostics. The first tests read the rules
without ROS; the rest wire a node wrong over DDS, as a user would.
"""
import pytest
from ros_helpers import TOPIC, image_msg, jpeg_msg, latest_status, status_log, synthetic_frame

from canet_ros.ros.input_watch import (
    COMPRESSED,
    IMAGE,
    Endpoint,
    InputWatch,
    InputWiring,
    candidate_topics,
    diagnose,
    read_graph,
)

RAW = InputWiring("/camera/image_raw", "/camera/image_raw", compressed=False, reliable=False)
CAMERA = Endpoint("/usb_cam", IMAGE, best_effort=True)


# -- the rules ----------------------------------------------------------------------------
def test_no_publisher_names_the_topic_and_how_to_point_the_node_elsewhere():
    problem = diagnose(RAW, [], ["/front/image_raw"])
    assert problem.message.startswith("no frames: nothing publishes on /camera/image_raw.")
    for words in ("image_topic:=", "-r /camera/image_raw:=", "image_in",
                  "sensor_msgs/msg/Image is published on /front/image_raw"):
        assert words in problem.message, problem.message
    assert diagnose(RAW, [], []).key == problem.key  # the hint is not a new situation


def test_a_compressed_publisher_on_the_raw_topic_is_named_with_the_setting_that_reads_it():
    jpeg = Endpoint("/cam", COMPRESSED, best_effort=True)
    problem = diagnose(RAW, [jpeg])
    assert ("/camera/image_raw carries sensor_msgs/msg/CompressedImage (from /cam), but the "
            "node reads sensor_msgs/msg/Image") in problem.message
    assert ("set input_transport:=compressed with "
            "-r /camera/image_raw/compressed:=/camera/image_raw") in problem.message
    on_its_own = InputWiring("/cam/compressed", "/cam/compressed", False, False)
    assert diagnose(on_its_own, [jpeg]).message.endswith("set input_transport:=compressed")
    reads_jpeg = InputWiring("/cam/compressed", "/cam", True, False)
    assert diagnose(reads_jpeg, [CAMERA]).message.endswith("set input_transport:=raw")
    assert diagnose(RAW, [Endpoint("/x", "std_msgs/msg/String", False)]).key == (
        "type", "std_msgs/msg/String")


def test_the_other_transports_stream_beside_the_input_is_named_with_the_setting_to_read_it():
    # A camera, or a bag recorded compressed, with only <topic>/compressed: the raw reader
    # is told the transport, not to look for another camera.
    jpeg = Endpoint("/cam", COMPRESSED, best_effort=True)
    problem = diagnose(RAW, [], ["/rear/image_raw"], beside=[jpeg])
    assert problem.message == (
        "no frames: nothing publishes on /camera/image_raw, but sensor_msgs/msg/CompressedImage "
        "is published on /camera/image_raw/compressed (from /cam); "
        "set input_transport:=compressed")
    # The mirror: a compressed reader of T/compressed, and only raw frames on T.
    reads_jpeg = InputWiring("/cam/image_raw/compressed", "/cam/image_raw", True, False)
    assert diagnose(reads_jpeg, [], beside=[CAMERA]).message.endswith(
        "sensor_msgs/msg/Image is published on /cam/image_raw (from /usb_cam); "
        "set input_transport:=raw")
    # image_topic named the compressed topic itself: raw would read that name too.
    as_is = InputWiring("/cam/image_raw/compressed", "/cam/image_raw/compressed", True, False)
    assert diagnose(as_is, [], beside=[CAMERA]).message.endswith(
        "set input_transport:=raw with image_topic:=/cam/image_raw")
    # Beside the input, but of no type the other transport reads: the plain hint.
    assert diagnose(RAW, [], beside=[Endpoint("/x", IMAGE, True)]) == diagnose(RAW, [])


def test_a_compressed_stream_on_a_topic_not_named_compressed_is_given_the_remap_that_reads_it():
    # input_transport:=compressed image_topic:=/camera/jpeg reads /camera/jpeg/compressed;
    # naming /camera/jpeg again would loop, the remap of the full name reads it.
    reads_jpeg = InputWiring("/camera/jpeg/compressed", "/camera/jpeg", True, False)
    jpeg = Endpoint("/cam", COMPRESSED, best_effort=True)
    problem = diagnose(reads_jpeg, [], ["/camera/jpeg"], beside=[jpeg])
    assert problem.message == (
        "no frames: nothing publishes on /camera/jpeg/compressed, but "
        "sensor_msgs/msg/CompressedImage is published on /camera/jpeg (from /cam); read it "
        "with -r /camera/jpeg/compressed:=/camera/jpeg")


class _Graph:
    """What read_graph asks of a node, from a fixed table of topic => publishers."""

    def __init__(self, table):
        self.table = table

    def get_publishers_info_by_topic(self, topic):
        from types import SimpleNamespace

        from rclpy.qos import qos_profile_sensor_data
        return [SimpleNamespace(node_namespace="/", node_name=name, topic_type=msg_type,
                                qos_profile=qos_profile_sensor_data)
                for name, msg_type in self.table.get(topic, [])]

    def get_topic_names_and_types(self):
        return [(topic, sorted({t for _, t in pubs})) for topic, pubs in self.table.items()]

    def count_publishers(self, topic):
        return len(self.table.get(topic, []))


def test_the_graph_is_read_beside_the_input_topic_for_the_other_transport():
    only_compressed = _Graph({"/camera/image_raw/compressed": [("cam", COMPRESSED)]})
    assert read_graph(only_compressed, RAW).message.endswith(
        "/camera/image_raw/compressed (from /cam); set input_transport:=compressed")
    jpeg_on_base = _Graph({"/camera/jpeg": [("cam", COMPRESSED)]})
    reads_jpeg = InputWiring("/camera/jpeg/compressed", "/camera/jpeg", True, False)
    assert read_graph(jpeg_on_base, reads_jpeg).message.endswith(
        "read it with -r /camera/jpeg/compressed:=/camera/jpeg")
    raw_on_base = _Graph({"/camera/image_raw": [("cam", IMAGE)]})
    reads_compressed = InputWiring("/camera/image_raw/compressed", "/camera/image_raw", True,
                                   False)
    assert read_graph(raw_on_base, reads_compressed).message.endswith(
        "set input_transport:=raw")


def test_a_reliable_reader_under_best_effort_publishers_is_told_so():
    reliable = InputWiring(TOPIC, TOPIC, compressed=False, reliable=True)
    problem = diagnose(reliable, [CAMERA])
    assert "offer best effort" in problem.message
    assert "qos_reliability:=best_effort" in problem.message
    # One reliable publisher is enough; a best-effort reader takes either.
    assert diagnose(reliable, [CAMERA, Endpoint("/bag", IMAGE, False)]) is None
    assert diagnose(RAW, [CAMERA]) is None
    # Another type beside the camera: the camera still delivers.
    assert diagnose(RAW, [CAMERA, Endpoint("/cam", COMPRESSED, True)]) is None


def test_segmentation_outputs_are_not_offered_as_the_camera():
    topics = [("/cam_front/segmentation/color", [IMAGE]), ("/rear/image_raw", [IMAGE]),
              ("/segmentation/labels", [IMAGE]), ("/rear/image_raw/compressed", [COMPRESSED]),
              ("/front/image_raw", [IMAGE])]
    assert candidate_topics(topics, IMAGE) == ["/front/image_raw", "/rear/image_raw"]


def test_each_situation_is_warned_once_then_each_minute_and_the_recovery_is_said():
    now = [0.0]
    watch = InputWatch(RAW, clock=lambda: now[0], grace_s=4.0, repeat_s=60.0)
    found = {"problem": diagnose(RAW, [])}

    def look(received=0):
        line = watch.check(received, lambda wiring: found["problem"])
        return None if line is None else (line.warn, line.text)

    assert look() is None and watch.problem is None  # discovery may still be under way
    now[0] = 5.0
    assert look() == (True, found["problem"].message)
    for now[0] in (10.0, 30.0, 64.9):
        assert look() is None and watch.problem == found["problem"]
    now[0] = 65.0
    assert look() == (True, found["problem"].message)  # a minute on: said again
    found["problem"] = diagnose(RAW, [Endpoint("/cam", COMPRESSED, True)])
    now[0] = 70.0
    assert look()[1].startswith("no frames: /camera/image_raw carries")  # another situation
    now[0] = 75.0
    assert look(received=3) == (False, "frames arrive on /camera/image_raw now")
    assert watch.problem is None
    assert look(received=9) is None  # flowing: nothing to say
    now[0] = 80.0  # the camera goes again, the same way as before it came back: said at once
    assert look(received=9) == (True, found["problem"].message)


# -- over DDS -------------------------------------------------------------------------------
def test_a_remap_of_another_nodes_topic_name_gets_a_warning_and_a_warn_status(rig):
    from diagnostic_msgs.msg import DiagnosticStatus
    from rcl_interfaces.msg import Log
    from sensor_msgs.msg import Image
    # segnet's, Isaac's and a private-topic node's idioms: none names this node's input.
    node = rig.node(stats_period=0.3, cli_args=[
        "--ros-args", "-r", "image_in:=/front/image_raw", "-r", "image:=/front/image_raw",
        "-r", "~/in/image:=/front/image_raw"])
    camera = rig.probe.node.create_publisher(Image, "/front/image_raw", 1)
    diagnostics, logged = status_log(rig, node)
    words = f"no frames: nothing publishes on {TOPIC}"
    assert rig.spin_until(lambda: logged(Log.WARN, words), timeout=90), \
        [m.msg for m in rig.probe.got["/rosout"]]
    assert "Image is published on /front/image_raw" in logged(Log.WARN, words)[0]
    assert rig.spin_until(lambda: words in getattr(latest_status(diagnostics), "message", ""))
    assert latest_status(diagnostics).level == DiagnosticStatus.WARN
    reports = len(diagnostics)
    assert rig.spin_until(lambda: len(diagnostics) >= reports + 5)  # five more looks
    assert len(logged(Log.WARN, words)) == 1, logged(Log.WARN, words)
    # Wired right: frames flow, the node says so once and its status is OK again.
    rig.probe.node.destroy_publisher(camera)
    rig.send(node, image_msg(synthetic_frame()))
    assert rig.spin_until(lambda: logged(Log.INFO, f"frames arrive on {TOPIC} now"))
    assert rig.spin_until(lambda: latest_status(diagnostics).level == DiagnosticStatus.OK)


def test_a_long_stats_period_still_looks_within_seconds_at_the_topic_it_reads(rig):
    from rcl_interfaces.msg import Log
    # stats_period 600: the input is still looked at every few seconds, and the WARN names
    # the topic the node subscribes to (with its /compressed), not the parameter's base.
    node = rig.node(stats_period=600.0, input_transport="compressed")
    _, logged = status_log(rig, node)
    words = f"no frames: nothing publishes on {TOPIC}/compressed"
    assert rig.spin_until(lambda: logged(Log.WARN, words), timeout=45), \
        [m.msg for m in rig.probe.got["/rosout"]]


def test_a_compressed_publisher_on_the_raw_input_is_named(rig):
    from rcl_interfaces.msg import Log
    from ros_processes import start_camera
    # Another process: one participant cannot hold both types on a topic. A user who
    # took `ros2 topic list`'s compressed topic for a raw camera's.
    node = rig.node(stats_period=0.3, image_topic="/cam/compressed")
    camera = start_camera("/cam", "64x48", rate=5.0, transport="compressed", camvid=False)
    try:
        _, logged = status_log(rig, node)
        words = ("/cam/compressed carries sensor_msgs/msg/CompressedImage (from /test_camera), "
                 "but the node reads sensor_msgs/msg/Image there; set input_transport:=compressed")
        assert rig.spin_until(lambda: logged(Log.WARN, words), timeout=90), \
            ([m.msg for m in rig.probe.got["/rosout"]], camera.output)
        assert " with -r " not in logged(Log.WARN, words)[0]  # it reads the topic as it is
    finally:
        camera.stop()


def test_a_camera_publishing_only_its_compressed_stream_is_named(rig):
    from rcl_interfaces.msg import Log
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage
    # As a bag recorded compressed plays back: nothing on the raw topic the node reads.
    node = rig.node(stats_period=0.3)
    rig.probe.node.create_publisher(CompressedImage, f"{TOPIC}/compressed",
                                    qos_profile_sensor_data)
    _, logged = status_log(rig, node)
    words = (f"CompressedImage is published on {TOPIC}/compressed (from /probe); "
             "set input_transport:=compressed")
    assert rig.spin_until(lambda: logged(Log.WARN, words), timeout=90), \
        [m.msg for m in rig.probe.got["/rosout"]]


def test_a_reliable_reader_under_a_best_effort_camera_is_named(rig):
    from rcl_interfaces.msg import Log
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    node = rig.node(stats_period=0.3, qos_reliability="reliable")
    rig.probe.node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    _, logged = status_log(rig, node)
    assert rig.spin_until(lambda: logged(Log.WARN, "(/probe) offer best effort"), timeout=90), \
        [m.msg for m in rig.probe.got["/rosout"]]


@pytest.mark.usefixtures("one_torch_thread")
def test_an_image_topic_ending_in_compressed_is_read_as_it_is(rig):
    # What `ros2 topic list` shows for a compressed camera; not .../compressed/compressed.
    node = rig.node(input_transport="compressed", image_topic="/front/image_raw/compressed")
    subscription, = node.subscriptions
    assert subscription.topic_name == "/front/image_raw/compressed"
    assert ("input /front/image_raw/compressed (compressed, best_effort; image_topic ends in "
            "/compressed: read as the compressed topic itself)") in node._ready_message()
    got = rig.listen(node, "labels")
    rig.send(node, jpeg_msg(synthetic_frame(seed=3)), "/front/image_raw/compressed")
    assert rig.wait_for(got)["labels"].width == 160

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

"""Why no frame arrives: the input topic's publishers, as the ROS graph shows them.

A remap that matches none of the node's names (segnet's ``image_in``, Isaac ROS's
``image``), a wrong ``image_topic``, a CompressedImage on the raw topic and a best-effort
camera under a reliable reader all look alike from inside: no callback, ``in 0.0 fps``.
When no frame came since the last look, the graph tells them apart. After frames have
flowed, the same silence means the camera stopped: its publisher left the graph (the
driver ended), or it is still there but sends nothing for a whole ``stats_period`` (a
stalled driver). The node warns once per distinct situation (again after ``REPEAT_S``
while it lasts, so an unplugged camera does not fill the log) and its diagnostics say
WARN until frames flow.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from canet_ros.ros.params import NodeConfig

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
# How often the graph is read while no frame arrives (at least this often, also with a
# long stats_period), and how long after start-up: discovery of a camera that is there
# takes a moment, more on a loaded machine.
CHECK_PERIOD_S = 5.0
GRACE_S = 4.0
REPEAT_S = 60.0
# A camera this many of its own frame intervals late has stalled (its pace, not ours).
STALL_GAPS = 3.0
OUTPUT_NAMES = ("labels", "color", "overlay", "confidence")
SHOWN_TOPICS = 3


@dataclass(frozen=True)
class Endpoint:
    """One publisher on the input topic: its node, message type and reliability."""

    node: str
    msg_type: str
    best_effort: bool


@dataclass(frozen=True)
class InputProblem:
    """A reason no frame can arrive; ``key`` tells situations apart, names aside."""

    key: Tuple[str, ...]
    message: str


def input_topic(config: NodeConfig, resolve: Callable[[str], str]) -> Tuple[str, str]:
    """Return the topic the node subscribes to, and a note for its ready line ('' or '; ...').

    ``resolve`` is the node's resolve_topic_name (remaps applied).
    """
    if config.input_transport != "compressed":
        return config.image_topic, ""
    if config.input_topic == config.image_topic:  # NodeConfig's rule: it ends in /compressed
        # The name `ros2 topic list` shows: the transport's topic itself, not the base of
        # .../compressed/compressed.
        return config.image_topic, ("; image_topic ends in /compressed: read as the "
                                    "compressed topic itself")
    # A remap names the base topic (-r image_raw:=front/image_raw) whatever the transport,
    # as image_pipeline's nodes take it; rcl alone would remap only the full
    # ".../compressed" name, and the node would wait on the old topic.
    return f"{resolve(config.image_topic)}/compressed", ""


@dataclass(frozen=True)
class InputWiring:
    """What the node reads: the resolved topic, the image_topic as given, how."""

    topic: str
    image_topic: str
    compressed: bool
    reliable: bool

    @property
    def expected_type(self) -> str:
        return COMPRESSED if self.compressed else IMAGE


def _nodes(publishers: Iterable[Endpoint]) -> str:
    return ", ".join(sorted({p.node for p in publishers}))


def _no_publisher(wiring: InputWiring, elsewhere: Sequence[str]) -> InputProblem:
    if wiring.compressed:
        where = ("image_topic:=/your/camera/image_raw (the base name: the node reads "
                 "<image_topic>/compressed) or image_topic:=/your/camera/image_raw/compressed")
    else:
        where = (f"image_topic:=/your/camera/image_raw or -r "
                 f"{wiring.image_topic}:=/your/camera/image_raw")
    text = (f"no frames: nothing publishes on {wiring.topic}. Name the camera's topic with "
            f"{where}; a remap of another node's topic name (image_in, image, ~/in/image) "
            "matches nothing in this node")
    if elsewhere:
        text += f"; {wiring.expected_type} is published on {', '.join(elsewhere)}"
    return InputProblem(("no publisher",), text)


def _publisher_left(wiring: InputWiring, received_before: int) -> InputProblem:
    # The topic was right (frames came): pointing the user at image_topic would mislead.
    return InputProblem(("publisher left",), (
        f"no frames: the publisher(s) of {wiring.topic} left the ROS graph ({received_before} "
        "frames received before); is the camera driver still running?"))


def stalled(wiring: InputWiring, silent_s: float, received_before: int) -> InputProblem:
    """Describe a camera in the graph that sent frames before, but none for ``silent_s``."""
    return InputProblem(("stalled",), (
        f"no frames from {wiring.topic} for {silent_s:.0f} s ({received_before} received "
        "before); its publisher is still there: is the camera streaming?"))


def _wrong_type(wiring: InputWiring, publishers: Sequence[Endpoint]) -> InputProblem:
    types = sorted({p.msg_type for p in publishers})
    text = (f"no frames: {wiring.topic} carries {', '.join(types)} (from {_nodes(publishers)}), "
            f"but the node reads {wiring.expected_type} there")
    if COMPRESSED in types and not wiring.compressed:
        text += "; set input_transport:=compressed"
        if not wiring.topic.endswith("/compressed"):
            # The node would read <image_topic>/compressed: name the full topic back.
            text += f" with -r {wiring.topic}/compressed:={wiring.topic}"
    elif IMAGE in types and wiring.compressed:
        text += "; set input_transport:=raw"
    return InputProblem(("type", *types), text)


def other_transport_topic(wiring: InputWiring) -> Optional[str]:
    """Return the topic beside the input that the other transport's stream is found on.

    A raw reader of T: T/compressed, where a camera (or a bag recorded compressed)
    publishes only its compressed stream. A compressed reader of T/compressed: T, the raw
    stream, or a CompressedImage on a topic not named .../compressed.
    """
    suffix = "/compressed"
    if wiring.compressed:
        return wiring.topic[:-len(suffix)] if wiring.topic.endswith(suffix) else None
    return None if wiring.topic.endswith(suffix) else wiring.topic + suffix


def _beside(wiring: InputWiring, beside: Sequence[Endpoint]) -> Optional[InputProblem]:
    topic = other_transport_topic(wiring)
    types = {p.msg_type for p in beside}
    if topic is None:
        return None
    if wiring.compressed and COMPRESSED in types:
        # image_topic:= cannot name it: the node would append /compressed again.
        msg_type, how = COMPRESSED, f"read it with -r {wiring.topic}:={topic}"
    elif wiring.compressed and IMAGE in types:
        msg_type, how = IMAGE, "set input_transport:=raw"
        if wiring.image_topic.endswith("/compressed"):  # else raw reads <image_topic> = topic
            how += f" with image_topic:={topic}"
    elif not wiring.compressed and COMPRESSED in types:
        # The compressed reader takes <image_topic>/compressed: this very topic.
        msg_type, how = COMPRESSED, "set input_transport:=compressed"
    else:
        return None
    found = [p for p in beside if p.msg_type == msg_type]
    return InputProblem(("other transport", msg_type), (
        f"no frames: nothing publishes on {wiring.topic}, but {msg_type} is published on "
        f"{topic} (from {_nodes(found)}); {how}"))


def diagnose(wiring: InputWiring, publishers: Sequence[Endpoint],
             elsewhere: Sequence[str] = (),
             beside: Sequence[Endpoint] = (), received_before: int = 0
             ) -> Optional[InputProblem]:
    """Say why ``publishers`` (the input topic's) cannot deliver a frame, or None if they can.

    ``elsewhere``: topics that carry the expected type, shown when the input topic has none.
    ``beside``: the publishers on ``other_transport_topic(wiring)``, which, when the input
    topic has none, name the setting that reads them. ``received_before``: frames the node
    got in its life; with some, an empty topic means the camera went away, not a wrong name.
    """
    if not publishers and received_before > 0:
        return _publisher_left(wiring, received_before)
    if not publishers:
        return _beside(wiring, beside) or _no_publisher(wiring, elsewhere)
    right = [p for p in publishers if p.msg_type == wiring.expected_type]
    if not right:
        return _wrong_type(wiring, publishers)
    if wiring.reliable and all(p.best_effort for p in right):
        return InputProblem(("qos",), (
            f"no frames: the publisher(s) of {wiring.topic} ({_nodes(right)}) offer best "
            "effort, and a reliable reader (qos_reliability: reliable) takes nothing from "
            "them; set qos_reliability:=best_effort, or make the publisher reliable"))
    return None


def candidate_topics(topics_and_types: Iterable[Tuple[str, List[str]]],
                     msg_type: str) -> List[str]:
    """List the topics carrying ``msg_type``, segmentation outputs (any node's) left out."""
    found = [name for name, types in topics_and_types if msg_type in types
             and not any(name.endswith(f"/segmentation/{out}") for out in OUTPUT_NAMES)]
    return sorted(found)


def read_graph(node: Any, wiring: InputWiring,
               received_before: int = 0) -> Optional[InputProblem]:
    """Diagnose ``wiring`` from what ``node`` sees of the ROS graph now."""
    from rclpy.qos import ReliabilityPolicy

    def endpoints(topic: str) -> List[Endpoint]:
        return [Endpoint(f"{info.node_namespace.rstrip('/')}/{info.node_name}",
                         info.topic_type,
                         info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT)
                for info in node.get_publishers_info_by_topic(topic)]

    publishers = endpoints(wiring.topic)
    elsewhere: List[str] = []
    beside: List[Endpoint] = []
    if not publishers and not received_before:
        # The graph lists topics that only have readers too (our own input among them).
        elsewhere = [name for name in candidate_topics(node.get_topic_names_and_types(),
                                                       wiring.expected_type)
                     if node.count_publishers(name) > 0][:SHOWN_TOPICS]
        other = other_transport_topic(wiring)
        beside = endpoints(other) if other is not None else []
    return diagnose(wiring, publishers, elsewhere, beside, received_before)


@dataclass(frozen=True)
class LogLine:
    warn: bool
    text: str


class InputWatch:
    """Decides when the input's state is news: a new problem, a repeat, or frames again.

    ``stall_s``: after frames have come, this long without one from a publisher that is
    still there is a stall (the node gives its ``stats_period``: a whole window empty), or
    ``STALL_GAPS`` of the camera's own frame intervals where that is longer: a camera at
    0.1 Hz was warned about, and cleared, every 10 s.
    """

    def __init__(self, wiring: InputWiring, clock: Callable[[], float] = time.monotonic,
                 grace_s: float = GRACE_S, repeat_s: float = REPEAT_S,
                 stall_s: float = math.inf) -> None:
        self.problem: Optional[InputProblem] = None
        self.wiring = wiring
        self._clock, self._repeat_s, self._stall_s = clock, repeat_s, stall_s
        self._start = clock()
        self._grace_s = grace_s
        self._received = 0
        self._changed_at = self._start  # when ``received`` last moved, as this clock reads
        self._gap_s = 0.0  # the camera's seconds per frame, as last seen
        self._warned: Optional[Tuple[Tuple[str, ...], float]] = None
        self._owed_all_clear = False  # a WARN was logged, no frame has come since

    def check(self, received_total: int,
              diagnose_now: Callable[[InputWiring], Optional[InputProblem]],
              last_frame_s: Optional[float] = None) -> Optional[LogLine]:
        """Look again; return the line to log now, if any.

        ``diagnose_now`` (reading the graph) runs only when no frame came since the last
        check and the start-up grace is over. ``last_frame_s``: when the newest frame
        arrived on this watch's clock, if known (else when this check saw the count move).
        """
        now = self._clock()
        if received_total != self._received:
            at = now if last_frame_s is None else last_frame_s
            if self._received > 0:  # a camera's own pace: slower than stall_s is no stall
                self._gap_s = (at - self._changed_at) / (received_total - self._received)
            self._received, self._changed_at = received_total, at
            owed, self._owed_all_clear = self._owed_all_clear, False
            self.problem, self._warned = None, None
            return LogLine(False, f"frames arrive on {self.wiring.topic} now") if owed else None
        if now - self._start < self._grace_s:
            return None
        self.problem = diagnose_now(self.wiring)
        silent_s = now - self._changed_at
        stall_s = max(self._stall_s, STALL_GAPS * self._gap_s)
        if self.problem is None and received_total > 0 and silent_s >= stall_s:
            self.problem = stalled(self.wiring, silent_s, received_total)
        if self.problem is None:
            self._warned = None  # should it come back, that is news
            return None
        if self._warned is not None and self._warned[0] == self.problem.key and \
                now - self._warned[1] < self._repeat_s:
            return None
        self._warned = (self.problem.key, now)
        self._owed_all_clear = True
        return LogLine(True, self.problem.message)

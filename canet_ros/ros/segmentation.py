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

"""SegmentationNode: the rclpy Node that segments camera images with CANet.

It validates its parameters before anything heavy is imported, then loads the
model, so a bad configuration fails at start-up, quickly, with one clear message.
The subscription callback only parks the newest frame in a one-slot mailbox; a
single worker thread decodes, segments and publishes it. A frame that arrives while
another is still waiting replaces it (counted as dropped), so the node never works
through a backlog. The process around it (signals, spin, exit) is in ``node.py``.
"""
from __future__ import annotations

import functools
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from canet_ros import image_codec
from canet_ros.class_colors import ClassColorsError, read_class_colors
from canet_ros.errors import out_of_memory
from canet_ros.inference.results import output_layout
from canet_ros.ros import stamp_check
from canet_ros.ros.engine_start import (  # noqa: F401 (StartupError, the factory: API)
    LOWER_FOR_MEMORY,
    EngineFactory,
    StartupError,
    default_engine_factory,
    load_engine,
)
from canet_ros.ros.input_format import InputFormat
from canet_ros.ros.input_watch import (
    CHECK_PERIOD_S,
    InputWatch,
    InputWiring,
    input_topic,
    read_graph,
)
from canet_ros.ros.label_info import (
    LABEL_INFO_QOS,
    LABEL_INFO_TOPIC,
    MISSING,
    class_names,
    label_info_message,
    label_info_type,
)
from canet_ros.ros.log_forwarding import FORWARDING
from canet_ros.ros.mailbox import LatestFrameMailbox
from canet_ros.ros.node_lifetime import exiting, start_worker, until_destroyed
from canet_ros.ros.node_report import (
    checkpoint_digest,
    diagnostic_array,
    ready_message,
    static_key_values,
)
from canet_ros.ros.output_readers import unmatched_readers, unmatched_warning
from canet_ros.ros.params import (
    SPEC_BY_NAME,
    NodeConfig,
    ParamError,
    check_checkpoint_file,
    declare_parameters,
    unknown_parameters,
    validate_config,
)
from canet_ros.ros.qos_profiles import OUTPUT_QOS, input_qos
from canet_ros.ros.runtime_params import RuntimeParameters
from canet_ros.ros.shared_outputs import shared_outputs
from canet_ros.ros.stats import FrameStats, StatsReport

OUTPUTS = ("labels", "color", "overlay", "confidence")
NODE_NAME = "segmentation_node"
# Long enough for one resnet101 CPU forward to finish.
WORKER_JOIN_TIMEOUT_S = 30.0
WARN_THROTTLE_S = 5.0


class SegmentationNode(RuntimeParameters, Node):
    """Subscribes to camera images and publishes CANet labels, colour mask and overlay."""

    def __init__(self, node_name: str = NODE_NAME, *,
                 engine_factory: Optional[EngineFactory] = None, **node_kwargs: Any) -> None:
        """``engine_factory`` (default SegmentationEngine) lets tests wrap the engine."""
        super().__init__(node_name, **node_kwargs)
        self._torn_down = False
        self._accepting_changes = False
        self._worker: Optional[threading.Thread] = None
        self._engine: Any = None
        self._colors: Any = None  # the class_colors file, read (and checked) before the model
        self._mailbox = LatestFrameMailbox()
        self._frame_stats = FrameStats()  # restarted when frames can arrive
        self._shared_outputs_warned: List[str] = []
        self._unmatched_warned: List[str] = []
        self._last_frame_at: Optional[float] = None  # time.monotonic() of the newest frame
        # Before the engine loads: it logs (precision auto's choice, warnings) through Python.
        FORWARDING.attach(self.get_logger())
        try:
            self._cfg = self._read_parameters()
            self._engine = load_engine(engine_factory or default_engine_factory, self._cfg,
                                       self._colors)
            self._digest = checkpoint_digest(self._engine.checkpoint_path,
                                             getattr(self._engine, "checkpoint_digest", None))
            self._create_io()
            self.add_on_set_parameters_callback(self._on_set_parameters)
            self._accepting_changes = True
            self._worker = start_worker(self, self._mailbox, type(self)._serve,
                                        f"{node_name}_inference",
                                        functools.partial(FORWARDING.bind, self.get_logger()))
            weakref.finalize(self, FORWARDING.detach, self.get_logger())  # dropped undestroyed
            self.get_logger().info(self._ready_message())
            FORWARDING.release(self.get_logger())  # this thread's later records: newest node
        except StartupError as exc:
            self.get_logger().fatal(f"cannot start: {exc}")
            self.destroy_node()
            raise
        except BaseException:  # Ctrl-C while loading: leave no thread or handle behind
            self.destroy_node()
            raise

    @property
    def config(self) -> NodeConfig:
        return self._cfg

    @property
    def engine(self) -> Any:
        return self._engine

    @property
    def frame_stats(self) -> FrameStats:
        return self._frame_stats

    @property
    def destroyed(self) -> bool:
        return self._torn_down

    @property
    def worker_alive(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    # -- start-up ---------------------------------------------------------------------
    def _read_parameters(self) -> NodeConfig:
        try:
            # Before declaring: rclpy refuses a bad value of a known name right there, and a
            # misspelt or foreign name (a segnet params file's) may be why a value fails.
            self._warn_unknown_parameters()
            values = declare_parameters(self)
            config = validate_config(values)
            check_checkpoint_file(config.checkpoint)
            self._colors = read_class_colors(config.class_colors) if config.class_colors else None
            return config
        except (ParamError, ClassColorsError) as exc:
            raise StartupError(str(exc)) from exc

    def _warn_unknown_parameters(self) -> None:
        # Humble to Kilted keep every override (-p, params files, launch) here, also the
        # ones no declare_parameter asks for; no public call lists them.
        given = list(getattr(self, "_parameter_overrides", {}))
        known = [n for n in given if n in SPEC_BY_NAME or self.has_parameter(n)]
        unknown = unknown_parameters(given, known)
        if unknown is not None:
            self.get_logger().warning(unknown)

    def _create_io(self) -> None:
        cfg = self._cfg
        msg_type = CompressedImage if cfg.input_transport == "compressed" else Image
        # The first report's window then starts here, not before the model was loaded.
        self._frame_stats = FrameStats()
        topic, self._input_note = input_topic(cfg, self.resolve_topic_name)
        self._input_sub = self.create_subscription(
            msg_type, topic, self._on_image, input_qos(cfg.qos_reliability))
        names = OUTPUTS if cfg.publish_confidence else OUTPUTS[:3]
        # Relative names: they land under the node's namespace (cam_front/segmentation/...).
        self._outputs = {name: self.create_publisher(Image, f"segmentation/{name}", OUTPUT_QOS)
                         for name in names}
        # Reused every frame: publish() serialises, so refilling them afterwards is safe.
        self._templates = {name: Image() for name in names}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._label_info_pub = self._publish_label_info()
        # On the steady clock: stats_period and the report's window are wall seconds, also
        # under use_sim_time, where the ROS clock stands still until /clock arrives.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._stats_timer = self.create_timer(cfg.stats_period, self._on_stats_timer,
                                              clock=steady)
        self._input_watch = InputWatch(InputWiring(
            self._input_sub.topic_name, cfg.image_topic, cfg.input_transport == "compressed",
            cfg.qos_reliability == "reliable"), stall_s=cfg.stats_period)
        self._input_format = InputFormat(self._input_sub.topic_name, self._engine.resolution)
        self._started_at = time.monotonic()
        if cfg.stats_period > CHECK_PERIOD_S:  # else every report looks
            self.create_timer(CHECK_PERIOD_S, self._watch_input, clock=steady)

    def _publish_label_info(self) -> Any:
        """Publish what each label id means, once: transient local keeps it for late readers."""
        msg_type = label_info_type()
        if msg_type is None:
            self.get_logger().info(MISSING)
            return None
        publisher = self.create_publisher(msg_type, LABEL_INFO_TOPIC, LABEL_INFO_QOS)
        header = Header(stamp=self.get_clock().now().to_msg())
        publisher.publish(label_info_message(msg_type, class_names(self._engine.class_set), header))
        return publisher

    def _ready_message(self) -> str:
        outputs = [self.resolve_topic_name(f"segmentation/{n}") for n in self._outputs]
        return ready_message(self._cfg, self._engine, self._digest, self._input_sub.topic_name,
                             self._input_note, outputs, self._colors)

    # -- frames -----------------------------------------------------------------------
    def _wanted(self) -> Dict[str, bool]:
        return {name: pub.get_subscription_count() > 0 for name, pub in self._outputs.items()}

    @until_destroyed
    def _on_image(self, msg: Any) -> None:
        received = time.monotonic()
        self._last_frame_at = received
        self._frame_stats.count("received")
        if not any(self._wanted().values()):
            self._frame_stats.count("idle")
            return
        if self._mailbox.put((msg, received)):
            self._frame_stats.count("dropped")

    def _serve(self, item: Tuple[Any, float]) -> None:
        """Segment one frame from the mailbox, in the worker thread (node_lifetime)."""
        try:
            self._process(*item)
        except Exception as exc:  # one bad frame (or CUDA hiccup) must not end the node
            # Stopped under the frame (destroy_node, exit, a shut-down context): not a fault.
            if self._torn_down or exiting() or not self.context.ok():
                self._frame_stats.count("dropped")  # in the totals, without an error line
                return
            self._frame_stats.count("failed")
            why = out_of_memory(exc, LOWER_FOR_MEMORY) or repr(exc)
            self.get_logger().error(f"segmentation failed, frame dropped: {why}",
                                    throttle_duration_sec=WARN_THROTTLE_S)

    def _process(self, msg: Any, received: float) -> None:
        wanted = self._wanted()
        if not any(wanted.values()):
            self._frame_stats.count("idle")
            return
        if hasattr(msg, "encoding"):  # raw: said before decoding, so an unusable one is too
            self._see_input(msg.width, msg.height, msg.encoding)
        try:
            order = image_codec.native_order(msg)
            frame = image_codec.to_frame(msg, order)
        except image_codec.ImageCodecError as exc:
            self._frame_stats.count("malformed")
            self.get_logger().warning(f"dropping unusable image message: {exc}",
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        if not hasattr(msg, "encoding"):  # compressed: the size is known once decoded
            self._see_input(frame.shape[1], frame.shape[0], msg.format)
        alpha = self.get_parameter("overlay_alpha").value if wanted["overlay"] else None
        result = self._engine.infer(frame, order, color=wanted["color"],
                                    overlay=wanted["overlay"],
                                    confidence=wanted.get("confidence", False), alpha=alpha,
                                    into=self._buffers(frame.shape[:2], wanted))
        self._publish(result, msg.header, order, wanted)
        self._frame_stats.published(time.monotonic() - received, self._stamp_age(msg.header))

    def _see_input(self, width: int, height: int, encoding: str) -> None:
        for line in self._input_format.see(width, height, encoding):
            self.get_logger().info(line)

    def _buffers(self, frame_hw: Tuple[int, int], wanted: Dict[str, bool]) -> Dict[str, Any]:
        """Arrays in the output messages' own buffers: the engine writes there, no copies.

        Safe to reuse every frame: publish() has serialised the last one.
        """
        layout = output_layout(self._engine.out_hw(frame_hw), self._engine.label_dtype)
        return {name: image_codec.image_buffer(self._templates[name], *layout[name])
                for name in self._outputs if wanted[name]}

    def _publish(self, result: Any, header: Any, order: str, wanted: Dict[str, bool]) -> None:
        if wanted["color"] and self._cfg.color_encoding == "bgr8":
            # The engine draws RGB: reversed where it drew it, the message's own buffer.
            result.color[...] = result.color[..., ::-1]
        arrays: Dict[str, Tuple[Any, str]] = {
            "labels": (result.labels, "mono16" if result.labels.dtype.itemsize == 2 else "mono8"),
            "color": (result.color, self._cfg.color_encoding),
            "overlay": (result.overlay, "bgr8" if order == "bgr" else "rgb8"),
            "confidence": (result.confidence, "mono8"),
        }
        for name, publisher in self._outputs.items():
            if not wanted[name]:
                continue
            array, encoding = arrays[name]
            template = self._templates[name]
            image_codec.fill_image(template, array, encoding, header=header)
            publisher.publish(template)

    def _stamp_age(self, header: Any) -> Optional[float]:
        """Return the frame's age for the latency sample; None where it has none (counted why)."""
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        kind, age = stamp_check.stamp_age(stamp_ns, self.get_clock().now().nanoseconds)
        if kind == stamp_check.UNSTAMPED:
            self._frame_stats.count("unstamped")
        elif kind == stamp_check.OUT_OF_RANGE and age is not None:
            self._frame_stats.count("stamp_out_of_range")
            sim_time = bool(self.get_parameter("use_sim_time").value)
            self.get_logger().warning(stamp_check.out_of_range_warning(age, stamp_ns, sim_time),
                                      throttle_duration_sec=stamp_check.STAMP_WARN_REPEAT_S)
        return age if kind == stamp_check.IN_RANGE else None

    # -- stats ------------------------------------------------------------------------
    @until_destroyed
    def _on_stats_timer(self) -> None:
        self._watch_input()  # first: the report's diagnostics say what it found
        extra = static_key_values(self._engine, self._digest, self._input_sub.topic_name)
        report = self._frame_stats.report(extra={**extra,
                                                 **dict(self._input_format.key_values())})
        self.get_logger().info(report.summary())
        self._diag_pub.publish(self.diagnostics(report))
        self._check_shared_outputs()
        self._check_unmatched_readers()

    @until_destroyed
    def _watch_input(self) -> None:
        received = self._frame_stats.totals()["received"]
        line = self._input_watch.check(received, lambda wiring: read_graph(self, wiring, received),
                                       self._last_frame_at)
        # Two call sites: rclpy refuses one that logs at two severities.
        if line is not None and line.warn:
            self.get_logger().warning(line.text)
        elif line is not None:
            self.get_logger().info(line.text)

    def _check_shared_outputs(self) -> None:
        """Warn when another node publishes on our label topic (once per change of who)."""
        others, warning = shared_outputs(self)
        if others and others != self._shared_outputs_warned:
            self.get_logger().warning(warning)
        self._shared_outputs_warned = others

    def _check_unmatched_readers(self) -> None:
        """Warn about output readers whose QoS keeps them unmatched (once per change)."""
        found = unmatched_readers(self, list(self._outputs.values()))
        if found and found != self._unmatched_warned:
            self.get_logger().warning(unmatched_warning(found))
        self._unmatched_warned = found

    def diagnostics(self, report: StatsReport) -> DiagnosticArray:
        """One DiagnosticStatus for this node; every KeyValue value is a string."""
        problems = [] if report.healthy else ["malformed input or failed inference"]
        if self._input_watch.problem is not None:
            problems.insert(0, self._input_watch.problem.message)
        return diagnostic_array(f"{self.get_fully_qualified_name()}: CANet segmentation",
                                str(self._engine.device_name), report, problems,
                                Header(stamp=self.get_clock().now().to_msg()))

    # -- shutdown ---------------------------------------------------------------------
    def destroy_node(self) -> Any:
        """Stop the worker (it finishes its current frame and publishes it), then the node.

        Called before the context is shut down, so that last frame's publish and log
        calls still have a valid context: that is what keeps Ctrl-C free of errors. Called
        after (rclpy's signal handlers), the frame is dropped quietly and the totals are
        logged once the node is gone: its rosout publisher cannot take them.
        """
        if self._torn_down:
            return None
        self._torn_down = True
        self._accepting_changes = False
        self._mailbox.close()
        worker = self._worker
        joined = worker is not None and worker is not threading.current_thread()
        if joined:
            worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
        to_rosout = self.context.ok()
        if joined and to_rosout:
            self._log_stop(worker.is_alive())
        result = super().destroy_node()
        if joined and not to_rosout:
            self._log_stop(worker.is_alive())
        self._engine = None  # only now: a callback already dispatched may read it
        FORWARDING.detach(self.get_logger())
        return result

    def _log_stop(self, busy: bool) -> None:
        if busy:
            self.get_logger().warning("inference worker still busy at shutdown; its frame is "
                                      "dropped")
        self.get_logger().info("stopped: " + self._frame_stats.life_summary(
            time.monotonic() - self._started_at))

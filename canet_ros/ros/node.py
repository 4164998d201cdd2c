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

"""The ``segmentation_node`` process: start-up, spinning, and a clean stop on a signal.

Only the standard library is imported at module level, so Ctrl-C during the seconds
of imports and model loading ends the process quietly (exit 0), not with a traceback
(:class:`StopSignals`: at once before ROS starts; while the model loads by unwinding, so
the node leaves the ROS graph and an export's temp file is removed, or after a few
seconds if loading code swallowed the interrupt). rclpy's own signal handlers are not
installed: they shut the context down at once, under a worker still publishing its
frame. Here SIGINT and SIGTERM only ask the spin loop to stop; the node then lets the
worker finish and publish its current frame, destroys itself, and only then is the
context shut down. A second signal changes nothing: the orderly stop already under way
is bounded. A callback's exception (a service request rclpy cannot read) is logged and
its request dropped; the node spins on (:func:`failed_callback`).
"""
from __future__ import annotations

import os
import re
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any, Dict, List, Optional, Set, Tuple

NODE_NAME = "segmentation_node"
# How long one spin_once waits; a stop request is seen within about this long.
SPIN_POLL_S = 0.1
# At most one line this often for a callback failing again the same way (see _spin).
CALLBACK_ERROR_THROTTLE_S = 5.0
_RCL_SOURCE_LOCATION = re.compile(r",? at \S+:\d+")
# The one line for a start without ROS 2 on the path (a pip install, an unsourced shell);
# ``canet benchmark --startup`` recognises it.
ROS_MISSING = ("ROS 2 Python (rclpy) is not importable: source your ROS 2 setup (e.g. "
               "/opt/ros/jazzy/setup.bash) in this shell and start the node again")
# Begins the description of an rclpy.init failure that is no fault of the arguments (the
# log folder, the middleware); ``canet benchmark --startup`` recognises it.
ROS_INIT_FAILED = "cannot initialize ROS"
# rcl's own wording for its argument errors (rcl/arguments.c), Humble to Jazzy.
_ARGUMENT_ERROR = "Couldn't parse "
_LOG_DIR_FAILED = re.compile(r"Failed to create log directory '(?P<path>.*)': (?P<errno>\d+)")


class StopSignals:
    """SIGINT/SIGTERM handling in three phases.

    Before ROS starts (``ros_started`` False) the first signal ends the node's own process
    (``exit_while_starting``) at once: nothing exists yet to undo. While it loads, the
    signal raises KeyboardInterrupt out of whatever is loading, so the node leaves the ROS
    graph and an export in flight removes its temp file; a loader that swallows it (or a
    main thread stuck in a C call) would keep the process loading, so the process then
    ends by itself after STOP_GRACE_S. A caller of ``main(args)`` only gets the
    KeyboardInterrupt. Once armed (spinning), a signal only records the request. Every
    later signal is merely counted, so cleanup is never interrupted.
    """

    def __init__(self, exit_while_starting: bool = False) -> None:
        self.armed = False
        self.ros_started = False
        self.exit_while_starting = exit_while_starting
        self.received: List[str] = []
        self._deadline: Optional[threading.Timer] = None
        self._previous: Dict[int, Any] = {}  # the handlers install() replaced
        self._previous_unraisable: Any = None

    @property
    def requested(self) -> bool:
        return bool(self.received)

    def install(self) -> bool:
        """Install the handlers; outside the main thread install none and return False."""
        if threading.current_thread() is not threading.main_thread():
            return False  # Python sets handlers from the main thread only
        for signum in _STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous_unraisable = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        if self.exit_while_starting:
            self._watch_wakeups()
        return True

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced (a host program's own)."""
        for signum, handler in self._previous.items():
            # None: a handler set outside Python; the default is the nearest Python can set.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()
        if self._previous_unraisable is not None:
            sys.unraisablehook = self._previous_unraisable
            self._previous_unraisable = None

    def _unraisable(self, unraisable: Any) -> None:
        # The handler's KeyboardInterrupt can land in a __del__ or weakref callback (an
        # import lock's), where Python prints it and drops it: the stop is recorded already,
        # and the loader's next KeyboardInterrupt or STOP_GRACE_S ends the start.
        if issubclass(unraisable.exc_type, KeyboardInterrupt) and self.requested:
            return
        (self._previous_unraisable or sys.__unraisablehook__)(unraisable)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        first = not self.received
        self.received.append(signal.Signals(signum).name)
        if first and not self.armed:
            self._stop_starting()
            raise KeyboardInterrupt

    def _stop_starting(self) -> None:
        if not self.exit_while_starting:
            return
        if not self.ros_started:
            _hard_exit(0)
        if self._deadline is None:
            self._deadline = threading.Timer(STOP_GRACE_S, _hard_exit, (0,))
            self._deadline.daemon = True
            self._deadline.start()

    def _watch_wakeups(self) -> None:
        # Python runs a handler in the main thread only, between bytecodes: while that
        # thread waits in a C call (a runtime's thread pool, an exporter's pass) and another
        # thread took the signal, the handler waits too. The C-level handler writes the
        # signal's number to the wakeup fd at once; this thread reads it.
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        threading.Thread(target=self._read_wakeups, args=(read_fd,), name="stop_signals",
                         daemon=True).start()

    def _read_wakeups(self, read_fd: int) -> None:
        while True:
            numbers = os.read(read_fd, 64)
            if not self.armed and any(number in _STOP_SIGNALS for number in numbers):
                self._stop_starting()


# How long a stop asked while the node loads may take before the process just ends: the
# orderly one takes well under a second (destroy the node, shut ROS down); launch sends
# SIGTERM 5 s after its SIGINT.
STOP_GRACE_S = 3.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def describe_init_error(exc: BaseException) -> str:
    """Say what made rclpy.init fail, without rcl's C source locations.

    Only rcl's argument errors are "bad ROS arguments"; logging that cannot start (an
    unwritable or unnamable log folder: another user's HOME, ``docker --user``) and any
    other failure say what failed, after :data:`ROS_INIT_FAILED`.
    """
    text = _RCL_SOURCE_LOCATION.sub("", str(exc)).replace("failed to initialize rcl: ", "")
    text = text.replace(". Error: error not set", "")
    if type(exc).__name__ == "UnknownROSArgsError":  # rclpy's: its text is the list alone
        return f"bad ROS arguments: unknown ROS arguments {text}"
    if text.startswith("Enclave name is not valid"):  # given with -e / --enclave
        return f"bad ROS arguments: {text}"
    if _ARGUMENT_ERROR in text:
        if "parameter override rule" in text:
            text += " (write -p name:=value; an empty string is -p \"name:=''\")"
        return f"bad ROS arguments: {text}"
    if text.startswith("failed to initialize logging"):
        return f"{ROS_INIT_FAILED}: {_describe_logging_error(text)}"
    return f"{ROS_INIT_FAILED}: {text}"


def _describe_logging_error(text: str) -> str:
    found = _LOG_DIR_FAILED.search(text)
    if found:  # rcl gives the errno as a number: name it
        reason = os.strerror(int(found["errno"]))
        return (f"cannot create the ROS log folder '{found['path']}' ({reason}): set "
                "ROS_LOG_DIR to a writable folder")
    detail = text.replace("failed to initialize logging: ", "")
    return (f"cannot set up ROS logging ({detail}): set ROS_LOG_DIR to a writable folder")


def main(args: Optional[List[str]] = None) -> int:
    """Run the node; the exit status is 0 after a signal, 1 when the node cannot start.

    Called without ``args`` (the console script), a signal before the node spins ends
    the process within STOP_GRACE_S (:class:`StopSignals`); later it ends the process
    itself once the node has stopped and rclpy has shut down (which flushes ROS logging): Python's
    teardown of torch and ONNX Runtime has nothing left to release, yet took up to 14 s
    on a loaded machine, and would abort under an inference that never returned (the
    worker is a daemon thread).

    With ``args`` (a host program embedding the node) it returns the status instead, and
    puts the SIGINT/SIGTERM handlers it found back before returning. Called from a thread
    other than the main thread it installs no handlers (Python allows that only in the
    main thread): the host owns its signals, and stops the node by shutting down rclpy's
    default context (``rclpy.shutdown()``), which main initialises itself.
    """
    signals = StopSignals(exit_while_starting=args is None)
    try:
        signals.install()
        status = _run(args, signals)
    except KeyboardInterrupt:
        status = 0  # stopped while starting: nothing was running yet
    finally:
        if args is not None:
            signals.armed = True  # a signal from here on is only recorded, never raised
            signals.restore()
    if args is None:
        _hard_exit(status)
    return status


def _run(args: Optional[List[str]], signals: StopSignals) -> int:
    try:
        import rclpy
        from rclpy.logging import get_logger
        from rclpy.signals import SignalHandlerOptions
    except ImportError as exc:  # no ROS logging without rclpy: one plain line instead
        # A signal's KeyboardInterrupt inside rclpy's pybind11 module init comes out as
        # ImportError("initialization failed"): a stop while starting, not a missing ROS.
        if signals.requested:
            return 0
        print(f"{NODE_NAME}: cannot start: {ROS_MISSING} ({exc})", file=sys.stderr)
        return 1

    from canet_ros.ros.segmentation import SegmentationNode, StartupError, default_engine_factory

    signals.ros_started = True  # from here a stop undoes what starting did
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # rclpy's RCLError: unreadable --params-file, bad -p rule
        get_logger(NODE_NAME).fatal(f"cannot start: {describe_init_error(exc)}")
        return 1
    node = None
    try:
        factory = _stops_on_signal(default_engine_factory, signals)
        node = SegmentationNode(engine_factory=factory)
        signals.armed = True
        _spin(node, signals)
    except StartupError:
        return 1  # the node logged it as FATAL
    except Exception:
        if rclpy.ok():
            raise
        return 0  # a host's rclpy.shutdown() while the node was being made: rclpy's RCLError
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _stops_on_signal(factory: Any, signals: StopSignals) -> Any:
    """Wrap ``factory``: an error it raises after a stop signal is that stop, not a fault.

    The signal's KeyboardInterrupt can come out of an exporter or a runtime as another
    error ("generator raised StopIteration"), which would be logged FATAL with exit 1.
    """
    def make(*args: Any, **kwargs: Any) -> Any:
        try:
            return factory(*args, **kwargs)
        except Exception as exc:
            if signals.requested:
                raise KeyboardInterrupt from exc
            raise
    return make


def _spin(node: Any, signals: StopSignals) -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    reported: Set[Tuple[str, str]] = set()
    try:
        while not signals.requested and rclpy.ok():
            try:
                executor.spin_once(timeout_sec=SPIN_POLL_S)
            except ExternalShutdownException:
                raise
            except Exception as exc:
                callback = failed_callback(exc)
                if callback is None or not rclpy.ok():
                    raise
                _report_callback_error(node, callback, exc, reported)
    except ExternalShutdownException:
        pass
    finally:
        executor.shutdown()
    if signals.requested:
        node.get_logger().info(f"{signals.received[0]} received: finishing the current frame "
                               "and stopping")


# Why only a callback's exception is caught: it belongs to one event (a service request
# rclpy cannot parse, such as a SetParameters value of type 42; one timer tick), so
# dropping that event loses nothing else, and a fault that repeats does so only as often
# as its events come, each time logged, never silently and never in a busy loop. An
# exception from the executor itself (its wait set, a handle) would come back on every
# spin_once without waiting: that still ends the node, with its traceback, as before.
def failed_callback(exc: BaseException) -> Optional[str]:
    """Name the callback ``exc`` came out of (``module.function``), or None if none did.

    rclpy's executors (Humble's and Jazzy's, read) call every callback through
    ``await_or_execute``; the frame after it in the traceback is the callback's own. On an
    rclpy that stopped doing so none is found, and every exception ends the node as before.
    """
    # node_lifetime's until_destroyed wraps the node's callbacks: name the wrapped one.
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.basename(f.filename) != "node_lifetime.py"]
    for index, frame in enumerate(frames[:-1]):
        if frame.name == "await_or_execute":
            inner = frames[index + 1]
            return f"{os.path.splitext(os.path.basename(inner.filename))[0]}.{inner.name}"
    return None


def _report_callback_error(node: Any, callback: str, exc: Exception,
                           reported: Set[Tuple[str, str]]) -> None:
    logger = node.get_logger()
    text = (f"callback {callback} failed ({type(exc).__name__}: {exc}); what it was handling "
            "is dropped and the node goes on")
    key = (callback, type(exc).__name__)
    if key in reported:  # the same fault again: one line per throttle period
        logger.error(text, throttle_duration_sec=CALLBACK_ERROR_THROTTLE_S)
        return
    reported.add(key)
    logger.error(text + " (its traceback: --log-level debug)")
    logger.debug("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _hard_exit(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, RuntimeError, ValueError):  # closed, or a write this call cut into
            pass
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())

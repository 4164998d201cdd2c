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

"""The segmentation node's lifetime inside a host's process: its worker thread and callbacks.

rclpy makes ``destroy_node()`` optional, and a host program (its own ``rclpy.init``,
executors and nodes) may drop the node, end, or shut the context down under a frame in
flight. Three promises hold then:

* The worker holds its node only while a frame is in hand, so a node dropped without
  ``destroy_node()`` is collected (its engine's memory, its threads, its graph entry).
* At interpreter exit the frame in flight finishes first: the worker is a daemon thread,
  and one frozen inside an OpenVINO or ONNX Runtime call aborts the process ("terminate
  called without an active exception", status 134). (rclpy's own wait aborts the same
  way in a host's daemon thread that spins an executor and wakes during the exit: that
  thread is the host's to stop.)
* A timer or subscription callback that an executor dispatched while ``destroy_node()``
  ran returns quietly, instead of raising into the host's executor and ending its spin.
"""
from __future__ import annotations

import atexit
import functools
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Tuple, TypeVar

from canet_ros.ros.mailbox import LatestFrameMailbox

# How long exit waits for the frames in flight: one resnet101 CPU forward.
EXIT_JOIN_TIMEOUT_S = 30.0

_lock = threading.Lock()
_running: Dict[threading.Thread, LatestFrameMailbox] = {}
_exiting = False

Step = Callable[[Any, Any], None]
Method = TypeVar("Method", bound=Callable[..., Any])


def exiting() -> bool:
    """Return True once the interpreter's exit has stopped the workers."""
    return _exiting


def start_worker(node: Any, mailbox: LatestFrameMailbox, step: Step, name: str,
                 on_start: Callable[[], None]) -> threading.Thread:
    """Start the daemon thread that hands each frame ``mailbox`` gives to ``step(node, frame)``.

    ``step`` must be a plain function (a bound method would hold the node). The thread
    ends when the mailbox closes: at ``destroy_node()``, at exit, or when the node is
    collected. ``on_start`` runs first, in the thread.
    """
    weakref.finalize(node, mailbox.close)
    thread = threading.Thread(target=_run, args=(weakref.ref(node), mailbox, step, on_start),
                              name=name, daemon=True)
    with _lock:
        _running[thread] = mailbox
    # Registered again at every start: atexit runs the newest first, so this runs before
    # the exit hooks of the libraries the engine loaded after this module.
    atexit.unregister(_stop_workers)
    atexit.register(_stop_workers)
    try:
        thread.start()
    except BaseException:
        _forget(thread)
        raise
    return thread


def _run(node_ref: Callable[[], Any], mailbox: LatestFrameMailbox, step: Step,
         on_start: Callable[[], None]) -> None:
    try:
        on_start()
        while _serve(node_ref, mailbox.take(), step):
            pass
    finally:
        _forget(threading.current_thread())


def _serve(node_ref: Callable[[], Any], frame: Any, step: Step) -> bool:
    # Its own frame: the node is held only while this call runs, never while waiting.
    node = node_ref() if frame is not None else None
    if node is None:
        return False
    step(node, frame)
    return True


def _forget(thread: threading.Thread) -> None:
    with _lock:
        _running.pop(thread, None)


def _stop_workers() -> None:
    """Close every worker's mailbox, then wait for the frames they are in (atexit).

    atexit runs after the host's non-daemon threads have ended and before the daemon
    ones are frozen: nothing can hand a node a frame any more, and no runtime call is cut
    off. The nodes stay as they are: destroying them here would wake a host's executor
    thread just as the interpreter goes down.
    """
    global _exiting
    _exiting = True
    with _lock:
        running: List[Tuple[threading.Thread, LatestFrameMailbox]] = list(_running.items())
    for _, mailbox in running:
        mailbox.close()  # all first: the frames finish side by side
    # One deadline for all: N nodes stuck in a runtime call must not hold the exit N times.
    deadline = time.monotonic() + EXIT_JOIN_TIMEOUT_S
    for thread, _ in running:
        thread.join(max(0.0, deadline - time.monotonic()))


def until_destroyed(method: Method) -> Method:
    """Make a node's callback return (None) once its node's ``destroyed`` is True.

    Also when destroy_node() runs under it, from another thread of the host's executor:
    the publishers and the engine it reads may be gone, and the exception would end the
    host's spin, all its nodes with it.
    """
    @functools.wraps(method)
    def callback(self: Any, *args: Any) -> Any:
        if self.destroyed:
            return None
        try:
            return method(self, *args)
        except Exception:
            if self.destroyed:
                return None
            raise
    return callback  # type: ignore[return-value]

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

"""DataLoader workers leave Ctrl-C and SIGTERM to the main process, which stops the loader.

A terminal's Ctrl-C reaches the whole process group, and torchrun (``os.killpg``), systemd
and Slurm send SIGTERM to every process of a job: data workers get them too. A worker that
dies of one breaks the stop: torch's SIGCHLD handler raises "DataLoader worker ... is
killed by signal" inside the step in flight, and one killed while it starts (spawn,
forkserver: it imports torch first) leaves the main process writing the pickled data set
into a pipe nobody reads, for good (spawn), or failing with BrokenPipeError (forkserver).

So workers start with both signals blocked (the mask is inherited across fork and exec,
as CPython's resource tracker uses it: bpo-33613) and, once running, ignore them, but for
their parent's SIGTERM. The main process decides, and ends its workers as after any
epoch: they leave on the loader's done event, when the main process is gone, or, stuck,
on the SIGTERM of torch's last-resort ``terminate()``.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from multiprocessing import resource_tracker
from typing import Any, Iterator

from torch.utils.data import DataLoader

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HAVE_SIGMASK = hasattr(signal, "pthread_sigmask")


def ignore_stop_signals(worker_id: int) -> None:
    """Make a DataLoader worker ignore SIGINT, and SIGTERM from all but its parent.

    Its ``worker_init_fn``. A signal that came while the worker started was held back by
    the inherited mask; ignoring SIGINT discards it. SIGTERM stays blocked and a thread
    takes each one: the parent's (torch's last-resort ``terminate()`` of a worker that
    does not leave) ends the worker at once, as torch's own worker handler does; anyone
    else's is dropped, where torch's handler died of it. Without ``sigwaitinfo`` (macOS)
    SIGTERM is left to torch's handler.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _HAVE_SIGMASK:
        return
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    if not hasattr(signal, "sigwaitinfo"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # this thread's children too
    threading.Thread(target=_take_sigterm, args=(os.getppid(),), daemon=True,
                     name="canet_sigterm").start()


def _take_sigterm(parent: int) -> None:
    while True:
        if signal.sigwaitinfo([signal.SIGTERM]).si_pid == parent:
            os._exit(0)  # as torch's worker handler: the parent ends it, nothing to flush


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while inside, so children start with them blocked.

    One that comes meanwhile waits and is handled on the way out (or at once, by the main
    thread, if another thread of the process took it): a stop request is never lost.
    """
    if not _HAVE_SIGMASK:  # Windows: no process group signals to guard against
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class StopSafeLoader(DataLoader):
    """A DataLoader whose workers leave SIGINT and SIGTERM to the main process.

    Its ``worker_init_fn`` is :func:`ignore_stop_signals` (another cannot be given), and
    each iteration starts its workers inside :func:`stop_signals_held`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, worker_init_fn=ignore_stop_signals, **kwargs)

    def __iter__(self) -> Any:
        """Start the workers (if any) with SIGINT and SIGTERM blocked."""
        if self.num_workers == 0 or not _HAVE_SIGMASK:
            return super().__iter__()
        method = (self.multiprocessing_context or multiprocessing).get_start_method()
        if method == "forkserver":
            # Workers fork from a server started once, with the mask of that moment: one
            # started blocked would start every later process of the program so (a Pool's
            # terminate() would then hang). Spawn starts each afresh, as safe with threads.
            self.multiprocessing_context = method = "spawn"
        if method != "fork":
            # Started inside, it would unblock both signals in this thread for the workers
            # after it: CPython's resource_tracker.ensure_running ends its own guard so.
            resource_tracker.ensure_running()
        with stop_signals_held():
            return super().__iter__()


_WORKER_FAILURES = (OSError, RuntimeError, EOFError)


def stoppable(loader: DataLoader, stop: Any) -> Iterator[Any]:
    """Start iterating ``loader`` now; its batches end early where a failure follows a stop.

    With ``stop.requested`` set, a loader that cannot start its workers (BrokenPipeError:
    a worker died while its data set was being written to it) or whose worker died
    (RuntimeError) ends the epoch as the stop would, instead of becoming the run's error:
    where :class:`StopSafeLoader`'s guard cannot hold (Windows has no ``pthread_sigmask``)
    or a worker died of something else meanwhile.
    """
    try:
        it = iter(loader)  # now: a stop request that comes meanwhile is seen before a step
    except _WORKER_FAILURES:
        if not stop.requested:
            raise
        return iter(())
    return _until_failure(it, stop)


def _until_failure(it: Iterator[Any], stop: Any) -> Iterator[Any]:
    try:
        yield from it
    except _WORKER_FAILURES:
        if not stop.requested:
            raise

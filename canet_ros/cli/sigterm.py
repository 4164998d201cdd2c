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

"""SIGTERM stops every subcommand as Ctrl-C does, so it too leaves valid output behind.

SIGTERM is how torchrun, systemd, ``docker stop``, Kubernetes and batch schedulers
(preemption) stop a job. Its default action ends the process at once: no resumable
checkpoint, partial folders left, a salvaged bag's temporary copy left in $TMPDIR.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, Callable, List, NoReturn, Optional


@contextlib.contextmanager
def sigterm_as_ctrl_c(received: List[bool]) -> Iterator[None]:
    """While inside, SIGTERM goes to whatever handles SIGINT at that moment.

    KeyboardInterrupt where nothing else handles it; training's "finish this step" and
    segment-bag's "please wait" while it finishes its outputs. ``received`` gets an entry
    per SIGTERM, so the caller can exit 143 rather than 130.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(_signum: int, frame: Any) -> None:
        received.append(True)
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):  # SIGINT ignored (a background job): SIGTERM still stops
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_quietly(main: Callable[[], Optional[int]], interrupted: int) -> NoReturn:
    """Run a command's ``main`` as the process and exit with its status, whatever signal comes.

    Once a command has returned, the interpreter's shutdown (atexit, then module teardown;
    about 2 s with torch loaded) still lies ahead, and there Python no longer turns SIGINT
    into KeyboardInterrupt: a Ctrl-C or SIGTERM then printed a traceback from an atexit
    callback, or killed the process (status -2/-15 to its parent) after a run that had
    finished and saved everything. The work is done by then, so both are ignored.
    """
    status: Any
    try:
        status = main()
    except KeyboardInterrupt:  # landed after the command's own handling had ended
        status = interrupted
    except SystemExit as exc:  # argparse's usage errors and --help
        status = exc.code
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    sys.exit(status)

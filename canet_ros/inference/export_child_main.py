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

"""The child process of ``export_child.export_in_child``: build the engine, so the export.

Started by ``export_in_child`` with one JSON argument; exit status 0 when the engine was
built (its export is then in the cache), ``export_child.REFUSED`` when the engine refused
the checkpoint or request (its class and message are then the last line of stdout, for
the parent to raise), 1 when the parent was gone before the child could watch it.

The child ends when its parent does (SIGKILL included): an int8 calibration left running
would take minutes of a robot's CPU for an export that nobody waits for. An export cut
short leaves no entry a later start trusts: the cache writes each file to a temp file
and renames it, the graph before the metadata that makes it an entry.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from ..checkpoint_checks import CheckpointError
from .engine import EngineError, SegmentationEngine
from .export_child import REFUSED

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_PERIOD_S = 0.5  # where the kernel cannot be asked: how often the parent is looked for


def main(argv: list[str] | None = None) -> int:
    """Build an engine from ``argv[0]`` (the JSON ``export_in_child`` writes): the export."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    args: dict[str, Any] = json.loads((sys.argv[1:] if argv is None else argv)[0])
    if args.get("parent") is not None and not end_with_parent(int(args["parent"])):
        print("the process that started this export is gone; not exporting", file=sys.stderr)
        return 1
    try:
        SegmentationEngine(args["checkpoint"], backbone=args["backbone"], device="cpu",
                           precision=args["precision"], runtime=args["runtime"],
                           resolution=tuple(args["resolution"]) if args["resolution"] else None,
                           warmup=False)
    except (EngineError, CheckpointError) as exc:  # the parent raises it, without torch
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        print(json.dumps({"refused": type(exc).__name__, "message": str(exc)}), flush=True)
        return REFUSED
    return 0


def end_with_parent(parent: int) -> bool:
    """Have this process end when ``parent`` does; False if it has already.

    Linux's PR_SET_PDEATHSIG fires when the parent's forking thread ends, not its process:
    safe here, since that thread waits in ``subprocess.run`` until this process ends (or
    kills it), whichever thread built the engine. Elsewhere a daemon thread watches.
    """
    if not _death_signal():
        threading.Thread(target=_watch, args=(parent,), name="watch_parent",
                         daemon=True).start()
    # After asking: a parent that died before the request was made is seen here.
    return os.getppid() == parent


def _death_signal() -> bool:
    """Ask the kernel for SIGKILL when the parent ends; False where it cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0),
                          ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
    except (OSError, AttributeError):  # no C library to load, or no prctl in it
        return False


def _watch(parent: int) -> None:
    # A reparented process's parent is init or a subreaper: never the pid it was given.
    while os.getppid() == parent:
        time.sleep(WATCH_PERIOD_S)
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())

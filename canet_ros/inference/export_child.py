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

"""A first start's ONNX export, made in a child process so that this one never loads torch.

A CPU engine runs a checkpoint file from its cached ONNX export without torch. Where the
cache has no entry yet, the export needs torch, whose import alone costs ~550 MB of
resident memory that a process never gets back (freeing the model and ``malloc_trim``
recover almost nothing): a node started that way ran at ~1.2 GB for its whole life
against ~0.43 GB after a cached start. ``SegmentationEngine(..., export_in_child=True)``
runs the export in a child process instead (``export_child_main``, which builds an
engine with the same arguments, so the cache entry, int8 graph included, is the one the
in-process path makes), then builds itself from the cache. A checkpoint or request the
child's engine refuses (EngineError, CheckpointError) comes back as the same error with the
same message, raised here without torch; any other failure of the child is logged at
DEBUG and the engine exports in-process as before, which reports errors in full. The
child ends with this process: killed, it leaves no orphan calibrating for minutes.

:func:`say_exporting` is the INFO line a first start logs before the export, either way.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["CHILD_TIMEOUT_S", "export_in_child", "say_exporting", "worth_a_child"]

log = logging.getLogger("canet_ros.inference")
# Only a hung child is stopped: a first int8 calibration takes minutes on a loaded CPU.
CHILD_TIMEOUT_S = 1800.0
# The child's own module: it imports the engine, which imports this one.
CHILD_MODULE = "canet_ros.inference.export_child_main"
IN_CHILD = "CANET_ROS_EXPORT_CHILD"  # set in the child's environment
# The child's exit status for a refusal, whose class and message are its stdout's last line.
REFUSED = 3
_TAIL = 4000  # characters of the child's output kept in the DEBUG line of a failure


def say_exporting(path: Path, resolution: tuple[int, int] | None, precision: str,
                  runtime: str) -> bool:
    """Log (INFO) that this start exports ``path`` first; False where it will not export.

    Without the ``onnx`` package the torch path runs the model on torch, exporting
    nothing; a precision this CPU or install cannot run is refused before any export.
    """
    from .cpu_runners import choose_precision, export_needs
    from .results import EngineError

    if export_needs() or importlib.util.find_spec("torch") is None:
        return False  # the start fails naming the package; no export line before it
    try:
        choose_precision(precision, runtime)
    except EngineError:  # the torch path refuses it, after reading the checkpoint
        return False
    size = f"{resolution[0]}x{resolution[1]}" if resolution else "its own input size"
    folder = _writable_folder()
    int8 = ("; then its int8 graph is calibrated (unless made before: ~20 s at 1024x512 on "
            "2 cores, minutes under heavy load)") if precision == "int8" else ""
    if folder is None:  # the note or warning about the folder says why it is not kept
        log.info("exporting %s at %s for the CPU runtime (torch, a few seconds, at every "
                 "start while the export cannot be kept)%s", path.name, size, int8)
    else:  # the folder at DEBUG: a start's one line about it is the warning where unwritable
        log.info("first start with %s at %s: exporting it for the CPU runtime (torch, a few "
                 "seconds, once; later starts load the export without torch)%s", path.name,
                 size, int8)
        log.debug("the export is kept in %s", folder)
    return True


def worth_a_child(path: Path | None = None) -> bool:
    """Return whether a child's export could help: torch not loaded here, a cache with room.

    Room: the cache's folder is writable and its disk has space for ``path``'s export
    (the checkpoint file; None: for a large model's). A child that cannot keep its
    export (a full disk) cost a second export here after its own: ~1.6x the start time.
    """
    # With torch loaded the memory is spent already, and the in-process export is quicker.
    # An embedded interpreter may have no executable to start.
    if not sys.executable or "torch" in sys.modules or os.environ.get(IN_CHILD):
        return False
    folder = _writable_folder()
    return folder is not None and _room_for_export(folder, path)


# Bytes of the cache's disk an export of the checkpoint takes, per byte of the file: its
# fp32 graph is the weights in fp32, 2x a file of fp16 weights (the bundled model: 9.3 MB
# -> 18.2 MB); an int8 graph, a quarter of that, comes next to it: 2.5x, and some margin.
EXPORT_ROOM_FACTOR = 3
EXPORT_ROOM_UNKNOWN = 256 * 1000 * 1000  # no file size known: a large backbone's fp32+int8


def _room_for_export(folder: Path, path: Path | None) -> bool:
    """Return whether ``folder``'s disk has room for ``path``'s export; warn where not."""
    from .onnx_runtime import writable_parent

    try:
        needed = EXPORT_ROOM_UNKNOWN if path is None else EXPORT_ROOM_FACTOR * path.stat().st_size
        free = shutil.disk_usage(writable_parent(folder) or folder).free
    except OSError:  # cannot tell: the child finds out, as before
        return True
    if free >= needed:
        return True
    log.warning("only %.0f MB free in %s, under the ~%.0f MB an export %stakes there: "
                "exporting in this process instead, which keeps torch loaded (over 0.5 GB "
                "of memory) for as long as it runs, at every start until an export is kept; "
                "free space there or set CANET_ROS_CACHE to a folder with room", free / 1e6,
                folder, needed / 1e6, f"of {path.name} " if path is not None else "")
    return False


def _writable_folder() -> Path | None:
    """Return the export cache's folder where this process may write it (or make it)."""
    from .onnx_runtime import cache_dir, writable_parent

    root = cache_dir()
    if root is None:
        return None
    root = root / "onnx"
    return root if writable_parent(root) is not None else None


def export_in_child(path: Path, backbone: str | None, precision: str, runtime: str,
                    resolution: tuple[int, int] | None) -> bool:
    """Make ``path``'s cache entry in a child process; return whether the child succeeded.

    Whether the entry is there is for the caller to check (it builds from it). The
    child's refusal of the checkpoint or request is raised here, as the in-process path
    raises it. A KeyboardInterrupt or SystemExit here kills the child (``subprocess.run``)
    and goes on.
    """
    # ``path`` as the engine was given it (the child has this working folder): a refusal
    # names the file as the in-process path would. ``parent``: the child ends with us.
    args = {"checkpoint": str(path), "backbone": backbone, "precision": precision,
            "runtime": runtime, "resolution": list(resolution) if resolution else None,
            "parent": os.getpid()}
    # Not ``-m``: it would put the working folder first on the child's path, and another
    # canet_ros there (a source tree the node was started from) would run instead.
    code = (f"import sys; sys.path[0] = sys.argv.pop(1); from {CHILD_MODULE} import main; "
            "sys.exit(main())")
    root = str(Path(__file__).resolve().parents[2])
    command = [sys.executable, "-c", code, root, json.dumps(args)]
    start = time.monotonic()
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=CHILD_TIMEOUT_S, env=_child_env(), check=False)
    except (OSError, subprocess.SubprocessError) as exc:  # no interpreter, timed out
        log.debug("exporting in a child process failed (%s); exporting here", exc)
        return False
    output = (done.stderr or b"").decode(errors="replace")[-_TAIL:]
    refusal = _refusal(done.stdout) if done.returncode == REFUSED else None
    if refusal is not None:  # loading torch here only to refuse it again took 2-3x as long
        log.debug("the child process refused %s; its output:\n%s", path.name, output)
        raise refusal
    if done.returncode != 0:
        log.debug("exporting in a child process failed (exit status %s); exporting here. "
                  "Its output:\n%s", done.returncode, output)
        return False
    log.debug("exported in a child process in %.1f s", time.monotonic() - start)
    return True


def _refusal(stdout: bytes | None) -> Exception | None:
    """Return the error the child's last line of output names, or None if it names none."""
    from ..checkpoint_checks import CheckpointError
    from .results import EngineError

    # Only these: a class the child names must be one this process can make without torch.
    known = {cls.__name__: cls for cls in (EngineError, CheckpointError)}
    lines = (stdout or b"").decode(errors="replace").strip().splitlines()
    try:
        said = json.loads(lines[-1])
        cls, message = known[said["refused"]], said["message"]
    except (IndexError, ValueError, TypeError, KeyError):
        return None  # not what export_child_main prints: treated as any other failure
    return cls(message) if isinstance(message, str) else None


def _child_env() -> dict[str, str]:
    # The same environment, with this canet_ros first on the path: the child must make
    # the entry this code reads (one installed elsewhere may key its entries otherwise).
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env[IN_CHILD] = "1"  # a child never starts one of its own, whatever its engine is asked
    return env

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

"""``canet benchmark --startup``: how long things take to start, as a user meets them.

Each figure is the wall time of a fresh process, from its start until it answers:

* ``canet --help`` and every ``canet COMMAND --help`` (median of three runs);
* ``segmentation_node`` given a bad parameter, until it has exited (its status is kept);
  where the node cannot start at all (ROS 2 not sourced: rclpy not importable; ROS cannot
  initialize: no writable log folder) the node figures are null and ``node_not_measured``
  says why, rather than timing that failure;
* ``segmentation_node`` with the checkpoint on the CPU, until it logs "ready", once with
  the checkpoint's ONNX export cached (the usual start) and once with an empty cache
  (the first start after installing or changing the checkpoint). Where the export cannot
  be cached (no writable cache folder) the cached figure is null and
  ``node_ready_cached_not_measured`` says why: that start would export too.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .checkpoint_meta import checkpoint_facts

__all__ = ["measure_startup", "never_ready", "summary"]

READY_TIMEOUT_S = 300.0


def _entry_point(name: str, module: str) -> list[str]:
    """Return the installed console script, else ``python -m module``."""
    script = Path(sys.executable).with_name(name)
    found = str(script) if script.is_file() else shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Seconds until ``argv`` exits, its status and its stderr."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env, timeout=READY_TIMEOUT_S,
                          check=False)
    return (time.perf_counter() - start, proc.returncode,
            proc.stderr.decode("utf-8", "replace"))


def _until_ready(argv: list[str], env: dict[str, str]) -> tuple[float | None, str]:
    """Seconds until the node logs "ready" (None if it never does), and its last line."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True, bufsize=1)
    seconds, last = None, ""
    try:
        for line in proc.stdout:
            last = line.strip() or last
            if "ready" in line:
                seconds = time.perf_counter() - start
                break
            if time.perf_counter() - start > READY_TIMEOUT_S:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return seconds, last


def _cache_export(checkpoint: str) -> str | None:
    """Build the engine once here, which caches what the node's first start needs.

    That is the checkpoint's export and, where the node's default precision auto aims at
    int8, its int8 graph (auto takes int8 only once that is made). Returns why the
    export is not in the cache afterwards (caching is best-effort), else None.
    """
    from ..inference import SegmentationEngine
    from ..inference.cpu_runners import choose_precision, runtime_for
    from ..inference.onnx_runtime import cache_dir, cached_graph, file_digest

    if runtime_for("fp32") is None:
        return None  # no CPU runtime: the node runs torch, which has no export to cache
    engine = SegmentationEngine(checkpoint, device="cpu", precision=choose_precision("auto"),
                                warmup=False)
    folder = cache_dir()
    if folder is None:
        return ("no cache folder (no home directory): set CANET_ROS_CACHE to a writable "
                "folder")
    path = engine.checkpoint_path
    if path is None or cached_graph(file_digest(path), engine.resolution) is None:
        return (f"the export could not be cached in {folder / 'onnx'} (not writable?): "
                "set CANET_ROS_CACHE to a writable folder")
    return None


def measure_startup(commands: Sequence[str], checkpoint: str = "default",
                    progress: bool = True, backbone: str | None = None) -> dict[str, Any]:
    """All start-up figures as one JSON-ready dict (seconds).

    ``commands`` are the ``canet`` subcommands whose ``--help`` is timed; the command line,
    above this package, passes its own list. ``backbone``: the node's backbone parameter
    (None: the checkpoint's own, as the node needs it named for any but the default).
    """
    from ..inference.results import cpu_name

    def say(text: str) -> None:
        if progress:
            print(f"canet benchmark --startup: {text}", file=sys.stderr, flush=True)

    own = str(checkpoint_facts(checkpoint)["backbone"])  # a bad file: refused at once
    if backbone and backbone != own:  # not after a minute of timing, by the node's FATAL
        from ..checkpoint import backbone_mismatch
        from ..checkpoint_checks import CheckpointError

        raise CheckpointError(backbone_mismatch(checkpoint, own, backbone))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    canet = _entry_point("canet", "canet_ros.cli")
    helps, failed = {}, []
    for argv in (["--help"], *([c, "--help"] for c in commands)):
        say(f"canet {' '.join(argv)} (3 runs)")
        runs = sorted(_run(canet + argv, env) for _ in range(3))
        helps[" ".join(argv)] = runs[1][0]
        failed += [" ".join(argv)] if any(status for _, status, _ in runs) else []
    report = {
        "device": cpu_name(), "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
        "python": sys.version.split()[0], "checkpoint": checkpoint,
        "help_s": helps, "help_max_s": max(helps.values()),
    }
    if failed:
        report["help_failed"] = failed
    report.update(_node_figures(checkpoint, backbone or own, env, say))
    return report


def _node_figures(checkpoint: str, backbone: str, env: dict[str, str],
                  say: Callable[[str], None]) -> dict[str, Any]:
    """Time the node; all figures null, with the reason, where it cannot start at all."""
    from ..ros.node import ROS_INIT_FAILED, ROS_MISSING

    node = _entry_point("segmentation_node", "canet_ros.ros.node") + ["--ros-args"]
    say("segmentation_node with device:=tpu (a bad parameter)")
    bad_s, bad_status, stderr = _run(node + ["-p", "device:=tpu"], env)
    # Either way it never read its parameters (no rclpy; ROS itself would not start, e.g.
    # no writable log folder): no bad-parameter figure, and no start would get ready.
    lines = [line for line in stderr.splitlines()
             if ROS_MISSING in line or ROS_INIT_FAILED in line]
    if lines:
        say("segmentation_node cannot start here: node figures not measured")
        return {"node_bad_parameter_exit_s": None, "node_bad_parameter_status": None,
                "node_ready_cached_s": None, "node_ready_uncached_s": None,
                "node_not_measured": lines[0].strip()}
    say("caching the checkpoint's ONNX export")
    not_cached = _cache_export(checkpoint)
    # The node's backbone parameter defaults to the bundled model's and must match the
    # checkpoint: without it a ResNet checkpoint's node refuses to start.
    ready = node + ["-p", f"checkpoint:={checkpoint}", "-p", f"backbone:={backbone}",
                    "-p", "device:=cpu"]
    cached_s, cached_last = None, ""
    if not_cached is None:
        say("segmentation_node until ready, export cached")
        cached_s, cached_last = _until_ready(ready, env)
    else:  # that start would export as well: timing it would mislabel an uncached start
        say(f"export not cached ({not_cached}): no cached-start figure")
    say("segmentation_node until ready, empty cache (exports first)")
    with tempfile.TemporaryDirectory(prefix="canet_startup_") as empty:
        fresh_s, fresh_last = _until_ready(ready, dict(env, CANET_ROS_CACHE=empty))
    report = {"node_bad_parameter_exit_s": bad_s, "node_bad_parameter_status": bad_status,
              "node_ready_cached_s": cached_s, "node_ready_uncached_s": fresh_s}
    if not_cached is not None:
        report["node_ready_cached_not_measured"] = not_cached
    cached_failed = cached_s is None and not_cached is None
    if cached_failed or fresh_s is None:
        report["node_last_line"] = cached_last if cached_failed else fresh_last
    return report


def never_ready(r: dict[str, Any]) -> str | None:
    """Say why the node never got ready in a start it was timed on (None: it always did)."""
    if "node_last_line" not in r:
        return None
    return (f"segmentation_node never got ready (checkpoint {r['checkpoint']}); its last "
            f"line: {r['node_last_line'] or '(none)'}")


def summary(r: dict[str, Any]) -> str:
    def fmt(value: float | None) -> str:
        return "never" if value is None else f"{value:6.2f} s"

    lines = [f"start-up on {r['device']} ({r['cpus']} CPUs, load {r['load_average_1min']:.1f}),"
             f" Python {r['python']}"]
    lines += [f"  canet {name:24s} {fmt(s)}" for name, s in r["help_s"].items()]
    if "node_not_measured" in r:
        return "\n".join(lines + [f"  node: not measured ({r['node_not_measured']})"])
    cached = fmt(r["node_ready_cached_s"])
    if "node_ready_cached_not_measured" in r:
        cached = f"not measured ({r['node_ready_cached_not_measured']})"
    lines += [
        f"  node, bad parameter, exited  {fmt(r['node_bad_parameter_exit_s'])} "
        f"(status {r['node_bad_parameter_status']})",
        f"  node ready, export cached    {cached}",
        f"  node ready, empty cache      {fmt(r['node_ready_uncached_s'])}",
    ]
    if "node_last_line" in r:
        lines.append(f"  node's last line: {r['node_last_line']}")
    return "\n".join(lines)

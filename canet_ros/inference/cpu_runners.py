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

"""The one place that picks the CPU runner for a precision: fp32, bf16, int8 or auto.

Every runner has the ``OnnxRunner`` interface (``forward_numpy``, ``runtime``,
``precision``); one with ``lowres`` True also has ``forward_lowres``, the logits before
the network's final upsample (OpenVINO: ``openvino_runner``). Which runtime runs which
precision was decided by measurement (docs/performance.md, "CPU precisions"):

* fp32: ONNX Runtime (OpenVINO f32 is no faster), OpenVINO when ORT is absent, and
  torch (the engine's own path, not a runner here) when neither is installed;
* bf16: OpenVINO (ONNX Runtime has no bf16 convolutions on x86);
* int8: the QDQ graph from ``quantize`` in OpenVINO (1.6x faster than ORT running it),
  its float layers in bf16 where the CPU has bf16.

``auto`` takes the first of :data:`AUTO_ORDER` that the CPU runs natively, on the
runtime its accuracy was measured on (OpenVINO for int8 and bf16), falling back down
the list if building it fails: the fastest first, each within the accuracy rule on
CamVid val (docs/performance.md). int8 only once its calibrated graph is cached: making
it costs ~20 s at 1024x512 on two cores (minutes under heavy load), which a start of the node
should not pay unasked, so until a start with precision int8 has made it, auto takes the
next one down and says so. A precision the CPU lacks is refused (why, per precision:
``cpu_features``).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import cpu_features
from .onnx_runtime import OnnxRunner, cache_dir, onnxruntime_available, writable_parent
from .openvino_runner import OpenVinoRunner, openvino_available
from .results import EngineError, cpu_name

__all__ = ["AUTO_ORDER", "CPU_CHOICES", "INT8_WAITING", "RUNS_ON", "auto_candidates",
           "choose_precision", "export_needs", "make_cpu_runner", "packages_missing", "runs_on",
           "runtime_for", "setup_failure"]

log = logging.getLogger("canet_ros.inference")
CPU_CHOICES = ("fp32", "bf16", "int8", "auto")
AUTO_ORDER = ("int8", "bf16", "fp32")
# Where auto may take a reduced precision: the runtime its accuracy was measured on.
_AUTO_RUNTIME = {"int8": "openvino", "bf16": "openvino"}
_NEEDS = {"bf16": "AVX-512 BF16 or AMX-BF16", "int8": "AVX-512 VNNI, AVX-VNNI or AMX-INT8"}
# What running it anyway would give (measured: cpu_features, docs/performance.md).
_WITHOUT = {
    "bf16": "without them bf16 is only emulated: OpenVINO runs fp32 and calls it bf16",
    "int8": "without them int8 is emulated with a saturating u8*s8 multiply-add, "
            "faster than fp32 but with labels under the accuracy rule (99.36 % of pixels "
            "equal to fp32's on an AVX2-only CPU; the rule is 99.5 %)"}


# Which runtimes run each precision, the preferred first (measured: module docstring).
RUNS_ON = {"fp32": ("onnxruntime", "openvino"), "bf16": ("openvino",),
           "int8": ("openvino", "onnxruntime")}
_LABELS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def runs_on(precision: str) -> str:
    """Say which runtimes run ``precision``: "OpenVINO only", "OpenVINO or ONNX Runtime"."""
    names = [_LABELS[n] for n in RUNS_ON[precision]]
    return " or ".join(names) + (" only" if len(names) == 1 else "")


def runtime_for(precision: str, runtime: str = "auto") -> str | None:
    """Return the runtime that runs ``precision`` ("onnxruntime"/"openvino"), None if not installed.

    ``runtime`` "auto" takes the faster installed one; a named runtime is used or None.
    """
    ort, ov = onnxruntime_available(), openvino_available()
    if precision == "int8" and not (ort and importlib.util.find_spec("onnx")):
        return None  # the quantizer is ONNX Runtime's, and it needs onnx
    for name in RUNS_ON[precision]:
        if runtime in ("auto", name) and {"onnxruntime": ort, "openvino": ov}[name]:
            return name
    return None


def export_needs() -> str | None:
    """Return what exporting a model to ONNX lacks here ("pip install onnx"), else None.

    torch's exporter needs the onnx package ("Module onnx is not installed!"), which neither
    onnxruntime nor openvino pulls in. Without it only models already in the export cache
    run on a CPU runtime.
    """
    return None if importlib.util.find_spec("onnx") else "pip install onnx"


def setup_failure(exc: BaseException, runtime: str | None) -> str:
    """Say why the export or ``runtime``'s session for it failed, for the fallback's message."""
    label = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}.get(runtime or "")
    if export_needs():
        return (f"exporting the model to ONNX{f' for {label}' if label else ''} needs the "
                f"onnx package ({export_needs()})")
    return f"{label} setup failed ({exc})" if label else f"the ONNX export failed ({exc})"


def choose_precision(precision: str, runtime: str = "auto",
                     flags: frozenset[str] | None = None, exported: bool = False) -> str:
    """Return the concrete CPU precision for ``precision`` (``auto`` resolved), or EngineError.

    ``exported``: the ONNX graph is at hand (cached or just made), so a refusal need not
    name the onnx package that exporting it would take.
    """
    if precision not in CPU_CHOICES:
        raise EngineError(f"precision {precision!r} is not a CPU precision; use one of "
                          f"{', '.join(CPU_CHOICES)}")
    native = cpu_features.cpu_precisions(flags)
    if precision == "auto":
        return auto_candidates(runtime, native)[0]
    if precision not in native:
        raise EngineError(f"precision {precision!r}: this CPU ({cpu_name()}) lacks "
                          f"{_NEEDS[precision]}; {_WITHOUT[precision]}. "
                          f"Use precision 'fp32' or 'auto'")
    # fp32 needs no CPU runtime: without one the engine runs it on torch (an optional
    # extra must not stop the default precision); only a runtime named by the caller insists.
    if not runtime_for(precision, runtime) and not (precision == "fp32" and runtime == "auto"):
        raise EngineError(_missing_runtime(precision, runtime, exported))
    return precision


def _missing_runtime(precision: str, runtime: str, exported: bool = False) -> str:
    """Say why ``runtime_for(precision, runtime)`` is None, naming only what really helps."""
    where = f" with runtime {runtime!r}" if runtime != "auto" else ""
    wrong = runtime not in ("auto", *RUNS_ON[precision])
    target = "auto" if wrong else runtime
    missing = packages_missing(precision, target, exported)
    if wrong:  # installing the named runtime again would change nothing
        after = f" after pip install {missing}" if missing else ""
        return (f"precision {precision!r} runs on {runs_on(precision)}, not on runtime "
                f"{runtime!r}: use runtime 'auto' (canet benchmark: --runtime auto){after}")
    return f"precision {precision!r}{where} needs: pip install {missing}"


def packages_missing(precision: str, runtime: str = "auto", exported: bool = False) -> str:
    """Return what to pip install for ``runtime`` ("auto": the preferred) to run ``precision``.

    "" where nothing is missing. Unless ``exported`` (the graph is cached or at hand) that
    includes onnx, which exporting the model takes: naming only the runtime sent a user to
    install it and then be refused again for onnx.
    """
    if precision == "int8":  # the quantizer is ONNX Runtime's and needs onnx, whoever runs it
        wanted = ["onnxruntime", "onnx"] + (["openvino"] if runtime == "openvino" else [])
    else:
        wanted = [RUNS_ON[precision][0] if runtime == "auto" else runtime]
    if not exported and "onnx" not in wanted:
        wanted.append("onnx")
    present = {"onnxruntime": onnxruntime_available(), "openvino": openvino_available(),
               "onnx": export_needs() is None}
    return " ".join(w for w in wanted if not present[w])


def auto_candidates(runtime: str, native: tuple[str, ...]) -> list[str]:
    """Return what auto may take here, fastest first; fp32 always last."""
    return [p for p in AUTO_ORDER if p == "fp32" or (
        p in native and runtime_for(p, runtime) == _AUTO_RUNTIME[p])]


def make_cpu_runner(graph: Path | bytes, size: tuple[int, int], num_classes: int,
                    precision: str = "fp32", runtime: str = "auto",
                    preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
                    threads: int | None = None) -> Any:
    """Return the runner for ``graph`` (the fp32 export) at ``precision`` on this CPU.

    ``runtime`` "auto" follows the table above; "onnxruntime" or "openvino" insists.
    ``preprocess`` (frame -> network input) is needed only to calibrate int8 the first
    time; the int8 graph is then cached beside the export (``quantize``). ``auto`` never
    calibrates: it takes int8 only where that graph is already cached.
    """
    if precision != "auto":
        chosen = choose_precision(precision, runtime, exported=True)
        return _build(graph, size, num_classes, chosen, runtime, preprocess, threads)
    runner, waiting = None, False
    for chosen in auto_candidates(runtime, cpu_features.cpu_precisions())[:-1]:
        if chosen == "int8" and not _int8_ready(graph):
            waiting = True
            continue
        try:
            runner = _build(graph, size, num_classes, chosen, runtime, preprocess, threads)
            break
        except Exception as exc:  # auto must still start: take the next precision down
            log.warning("precision auto: %s failed (%s); trying the next", chosen, exc)
    runner = runner or _build(graph, size, num_classes, "fp32", runtime, preprocess, threads)
    log.info("precision auto: %s on %s%s", runner.precision, runner.runtime,
             _int8_note(graph) if waiting else "")
    return runner


# Said once per start where auto would take int8 but its graph is not made yet. The time
# is docs/performance.md's (17-19 s measured at 1024x512 on 2 busy cores).
INT8_WAITING = ("; int8 (faster on this CPU) waits for its calibrated graph: start once with "
                "precision int8 (node: precision:=int8; canet segment-bag/evaluate/benchmark: "
                "--precision int8) to make it (~20 s at 1024x512 on 2 cores, minutes under "
                "heavy load; kept in the cache), and auto takes int8 from then on")
# The same where the cache cannot keep it: a start at int8 would calibrate for nothing.
INT8_NOT_KEPT = ("; int8 (faster on this CPU) waits for its calibrated graph, which the cache "
                 "cannot keep ({why}): once CANET_ROS_CACHE "
                 "names a writable folder with free space, start once with precision int8 "
                 "(node: precision:=int8; canet segment-bag/evaluate/benchmark: --precision "
                 "int8) to make it, and auto takes int8 from then on")


def _int8_note(graph: Path | bytes) -> str:
    folder = _int8_folder(graph)
    if folder is not None and _can_keep(folder, _graph_size(graph)):
        return INT8_WAITING
    why = f"{folder} is not writable or is full" if folder else "no cache folder"
    return INT8_NOT_KEPT.format(why=why)


def _int8_folder(graph: Path | bytes) -> Path | None:
    """Where ``quantize.int8_graph`` would keep the int8 graph of ``graph``."""
    if isinstance(graph, Path):
        return graph.parent  # beside the export (quantize.int8_path)
    root = cache_dir()
    return None if root is None else root / "onnx"


def _graph_size(graph: Path | bytes) -> int:
    """Bytes the int8 graph may need: at most the fp32 export's size (int8 weights are 1/4).

    A graph given as bytes is stored in the cache too before it is quantized.
    """
    if isinstance(graph, bytes):
        return 2 * len(graph)
    try:
        return graph.stat().st_size
    except OSError:
        return 0


def _can_keep(folder: Path, size: int) -> bool:
    """Whether a file of ``size`` bytes can be written in ``folder`` (made if missing)."""
    existing = writable_parent(folder)
    if existing is None:
        return False
    try:
        return shutil.disk_usage(existing).free >= size
    except OSError:
        return False


def _int8_ready(graph: Path | bytes) -> bool:
    from .quantize import cached_int8

    return cached_int8(graph) is not None


def _build(graph: Path | bytes, size: tuple[int, int], num_classes: int, chosen: str,
           runtime: str, preprocess: Callable[[np.ndarray], np.ndarray] | None,
           threads: int | None) -> Any:
    if chosen == "int8":
        from .quantize import int8_graph

        if preprocess is None:
            raise EngineError("precision 'int8' needs a preprocess function to calibrate")
        cached = _int8_ready(graph)
        int8 = int8_graph(graph, preprocess)
        try:
            return _runner(int8, size, num_classes, chosen, runtime, threads)
        except Exception as exc:
            if not cached or not isinstance(int8, Path) or not _ours_and_damaged(int8):
                raise
            # A damaged cache file would fail every start: make the graph again, once.
            log.warning("cached int8 graph %s unusable (%s); making it again", int8, exc)
            int8.unlink(missing_ok=True)
            graph = int8_graph(graph, preprocess)
    return _runner(graph, size, num_classes, chosen, runtime, threads)


def _ours_and_damaged(path: Path) -> bool:
    """Return whether ``path`` is an int8 graph that ONNX cannot read and we may replace.

    A runtime fails on a good file too (a cache of OpenVINO's it cannot use, a file another
    user made that this one cannot read): deleting that would cost a calibration at best
    and, in a folder another user filled, fail with "Permission denied" instead of running.
    """
    import onnx  # the quantizer that made the file needs it (runtime_for)

    if not os.access(path.parent, os.W_OK | os.X_OK):
        return False  # someone else's cache: not ours to delete
    try:
        onnx.checker.check_model(onnx.load(str(path)))
    except OSError:
        return False  # unreadable here, not damaged
    except Exception:  # a truncated or garbled protobuf, a graph that does not hold
        return True
    return False


def _runner(graph: Path | bytes, size: tuple[int, int], num_classes: int, chosen: str,
            runtime: str, threads: int | None) -> Any:
    found = runtime_for(chosen, runtime)
    if found is None:  # fp32 with neither runtime: the engine's torch path runs that
        raise EngineError(_missing_runtime(chosen, runtime, exported=True))
    use_ov = found == "openvino"
    if use_ov:
        # int8 leaves a few small layers in float: bf16 where the CPU has it (measured).
        rest = "bf16" if "bf16" in cpu_features.cpu_precisions() else "fp32"
        return OpenVinoRunner(graph, size, num_classes, chosen, threads, rest)
    return OnnxRunner(graph, size, num_classes, threads, precision=chosen)

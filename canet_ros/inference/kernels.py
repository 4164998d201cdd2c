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

"""Fused loops for a camera-size frame on the CPU, compiled by numba when installed.

With OpenCV and numpy alone, a 1920x1200 frame into a 1024x512 network costs ~5 ms of
passes over whole images before the model (widen to 16 bits, resize, split and scale)
and ~6-10 ms of small array operations after it (``lowres``). Each loop here does one of
those jobs in a single pass over what it needs:

* :func:`resize_normalise` -- the reference's float bilinear resize (align_corners=False,
  no antialiasing) and normalisation from the uint8 frame straight into the NCHW input;
* :func:`argmax` -- labels and maxima of (C, n) logits, the first maximum winning.

Built with :func:`loop` as these are: ``cell_loops`` (the mixed cells of an upsample),
``softmax_loops`` (the confidence's sums), ``image_loops`` (gather, blend).

Without numba (an optional extra: ``pip install numba``), with ``CANET_ROS_NUMBA=0`` or
with numba's ``NUMBA_DISABLE_JIT=1`` the callers keep their OpenCV/numpy paths; the
functions still run as plain Python, which the tests use on tiny inputs. Compiled code
is cached by numba (``cache=True``), so only a machine's first start pays the compile
(docs/performance.md); where that cache cannot be written (a read-only install and home,
a full disk) the loops run uncached, with one warning per process.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from typing import Any, Callable

import numpy as np

from ..versions import import_optional

__all__ = ["AxisTables", "ENV", "EXP2_TAYLOR", "argmax", "available", "installed", "loop",
           "loops_cached", "loops_for", "loops_status", "resize_normalise", "say_if_compiling"]

ENV = "CANET_ROS_NUMBA"
_ABSENT = "numba is not installed (pip install canet_ros[numba])"
# Taylor coefficients of 2^u = exp(u ln 2), |u| <= 1/2: (ln 2)^k / k!, k = 6 .. 0 (Horner
# order), within 2e-7 relative: with 2^n from exponent bits, the loops' vectorised exp.
_LN2 = 0.6931471805599453
EXP2_TAYLOR = np.array([_LN2 ** 6 / 720, _LN2 ** 5 / 120, _LN2 ** 4 / 24, _LN2 ** 3 / 6,
                        _LN2 ** 2 / 2, _LN2, 1.0], np.float32)
log = logging.getLogger("canet_ros.inference")


def available() -> bool:
    """Whether the compiled loops run: numba imports and compiles, ``CANET_ROS_NUMBA`` != 0."""
    return os.environ.get(ENV, "1").strip() != "0" and installed() and not _jit_disabled()


def installed() -> bool:
    """Whether numba imports, whatever ``CANET_ROS_NUMBA`` says."""
    return _numba() is not None


def loops_for(device_type: str) -> str | None:
    """Say which loops a frame path on ``device_type`` runs: "numba", "opencv", None (GPU)."""
    if device_type != "cpu":
        return None
    return "numba" if available() else "opencv"


def loops_status() -> tuple[bool, str]:
    """Return (True, "numba X") where the compiled loops run, else (False, why they do not)."""
    module = _numba()
    if module is None:
        return False, _import_numba()[1] or "numba does not import"
    if os.environ.get(ENV, "1").strip() == "0":
        return False, f"numba {module.__version__} is switched off by {ENV}=0"
    if _jit_disabled():
        return False, f"numba {module.__version__}: JIT disabled (NUMBA_DISABLE_JIT)"
    return True, f"numba {module.__version__}"


def _jit_disabled() -> bool:
    # NUMBA_DISABLE_JIT=1 makes njit hand back the Python function: the loops would run
    # interpreted, 10-15x slower than the OpenCV/numpy path they stand in for.
    return bool(getattr(getattr(_numba(), "config", None), "DISABLE_JIT", False))


@functools.lru_cache(maxsize=1)
def _numba() -> Any:
    # Imported on first use (0.3 s): a CUDA engine never needs it.
    module, problem = _import_numba()
    if module is None and problem != _ABSENT:  # installed but broken: say so, once
        log.warning("%s; the CPU frame path uses OpenCV/numpy", problem)
    return module


def _import_numba() -> tuple[Any, str | None]:
    # Broken installs (no pkg_resources for numba < 0.57 on setuptools >= 81, a numpy it
    # predates) come back as the problem: they must not stop the node.
    numba, problem = import_optional("numba", "numba")
    if numba is None and problem is None:
        return None, _ABSENT
    return numba, problem


def loops_cached() -> bool | None:
    """Return whether numba's cache holds this machine's compile of the frame path's loops.

    Told cheaply (no compile: numba's index file of the resize loop, which every CPU frame
    runs first, for this CPU and this source); None where this numba cannot be asked so.
    A loop whose cache write failed in this process compiles at every start: False.
    """
    if _NO_CACHE:
        return False
    try:
        from numba.core.caching import FunctionCache
        from numba.core.registry import cpu_target

        machine = cpu_target.target_context.codegen().magic_tuple()
        index = FunctionCache(_resize_rows.python)._cache_file._load_index()
    except RuntimeError:  # no folder numba may write: the loops compile at every start
        return False
    except Exception as exc:  # numba's internals differ in this version
        log.debug("cannot tell whether numba's loops are cached (%s)", exc)
        return None
    return any(isinstance(key, tuple) and len(key) > 1 and key[1] == machine for key in index)


_SAID_COMPILING: list[bool] = []


def say_if_compiling() -> None:
    """Log (INFO, once per process) that the loops compile now, where numba has no cache of them.

    The engine's warm-up calls it before the first frame, which compiles (or loads) them.
    """
    if _SAID_COMPILING or not available():
        return
    _SAID_COMPILING.append(True)
    cached = loops_cached()
    if cached is False:
        log.info("compiling the CPU frame path's loops with numba (a few seconds on this "
                 "machine's first start; later starts load them from numba's cache)")
    elif cached is None:
        log.debug("loading numba's loops (compiled now if this machine has not yet)")


class _Loop:
    """A loop compiled on its first call when :func:`available`, else run as Python."""

    def __init__(self, fn: Callable[..., Any], contract: bool = False):
        self.python, self._contract = fn, contract
        # (the compiled loop, whether it reads and writes numba's cache): one attribute,
        # so that a thread never pairs one loop with the other's flag.
        self._compiled: tuple[Callable[..., Any], bool] | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        if not available():
            return self.python(*args)
        state = self._compiled
        if state is None:
            state = self._compiled = _compile(self.python, self._contract)
        compiled, cached = state
        try:
            return compiled(*args)
        except OSError as exc:
            # numba writes its cache while it compiles a signature, before the loop runs
            # (a full disk: ENOSPC): the cache is best effort, the loop is not.
            if not cached:
                raise
            _cache_failed(_cache_folder(compiled, exc), exc.strerror or str(exc))
            state = self._compiled  # the helper thread's first call may have replaced it
            if state is None or state[1]:
                state = self._compiled = _compile(self.python, self._contract)  # uncached
            return state[0](*args)


# The first reason numba's cache failed in this process: then every loop compiles
# uncached, and the warning is said once, not once per loop.
_NO_CACHE: list[str] = []
_NO_CACHE_LOCK = threading.Lock()


def _cache_failed(folder: str, reason: str) -> None:
    with _NO_CACHE_LOCK:
        if _NO_CACHE:
            return
        _NO_CACHE.append(reason)
    log.warning("numba cannot cache its compiled loops in %s (%s); they compile at every "
                "start (2-5 s): set NUMBA_CACHE_DIR to a writable folder with free space",
                folder, reason)


def _cache_folder(dispatcher: Any, exc: OSError) -> str:
    folder = getattr(getattr(dispatcher, "stats", None), "cache_path", None)
    if not folder and exc.filename:
        folder = os.path.dirname(os.fspath(exc.filename))
    return str(folder or "numba's cache folder")


def _cache_folders(fn: Callable[..., Any]) -> str:
    # Where numba looks, in its order: NUMBA_CACHE_DIR, else the module's __pycache__,
    # then its user cache. Its own error names only the source file.
    numba = _numba()
    chosen = getattr(getattr(numba, "config", None), "CACHE_DIR", "")
    if chosen:
        return str(chosen)
    folders = [os.path.join(os.path.dirname(inspect.getfile(fn)), "__pycache__")]
    try:
        from numba.misc.appdirs import AppDirs

        folders.append(AppDirs(appname="numba", appauthor=False).user_cache_dir)
    except (ImportError, AttributeError):  # moved in another numba: name what is known
        pass
    return " or ".join(folders)


def _compile(fn: Callable[..., Any], contract: bool = False) -> tuple[Callable[..., Any], bool]:
    # nogil: a helper thread runs part of the work meanwhile. error_model numpy: no
    # division checks in the loops. cache: compiled once per machine, where it can be.
    options: dict[str, Any] = {"nogil": True, "error_model": "numpy", "boundscheck": False}
    if contract:  # fused multiply-adds (a polynomial: 20 % faster, rounding only)
        options["fastmath"] = {"contract"}
    if not _NO_CACHE:
        try:
            return _numba().njit(cache=True, **options)(fn), True
        except RuntimeError:  # numba found no writable folder (read-only install, $HOME)
            _cache_failed(_cache_folders(fn), "cannot be written")
    return _numba().njit(**options)(fn), False


_jit = _Loop


def loop(fn: Callable[..., Any] | None = None, *, contract: bool = False) -> Any:
    """Make a function of another module a loop as those here.

    ``@loop``, or ``@loop(contract=True)`` to let it fuse multiply-adds.
    """
    if fn is None:
        return functools.partial(_Loop, contract=contract)
    return _Loop(fn, contract)


class AxisTables:
    """Bilinear sampling along one axis as torch computes it: float32, half-pixel centres.

    ``first``/``second`` are the two source indices of each output index (the second
    clamped to the edge) and ``lam`` the second's weight.
    """

    def __init__(self, n_out: int, n_in: int, stride: int = 1):
        scale = np.float32(n_in) / np.float32(n_out)
        pos = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
        pos = np.maximum(pos, np.float32(0))
        first = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
        self.lam = (pos - first.astype(np.float32)).astype(np.float32)
        self.first = first * stride
        self.second = np.minimum(first + 1, n_in - 1) * stride


@_jit
def _resize_rows(flat, out, y0, y1, ly, x0, x1, lx, chan, scale, bias, start, stop):
    width = flat.shape[1]
    row = np.empty(width, np.float32)
    one = np.float32(1)
    for i in range(start, stop):
        top, bottom = flat[y0[i]], flat[y1[i]]
        w1 = ly[i]
        w0 = one - w1
        # Rows first: one contiguous pass over both source rows, all channels at once.
        for k in range(width):
            row[k] = w0 * np.float32(top[k]) + w1 * np.float32(bottom[k])
        for c in range(3):
            src = row[chan[c]:]
            plane = out[c, i]
            a, b = scale[c], bias[c]
            for j in range(plane.shape[0]):
                v1 = lx[j]
                plane[j] = ((one - v1) * src[x0[j]] + v1 * src[x1[j]]) * a + b


def resize_normalise(frame: np.ndarray, out: np.ndarray, rows: AxisTables, cols: AxisTables,
                     chan: np.ndarray, scale: np.ndarray, bias: np.ndarray,
                     start: int, stop: int) -> None:
    """Fill rows ``start:stop`` of ``out`` (3, h, w) float32 from an HxWx3 uint8 frame.

    ``cols`` has stride 3 (interleaved channels); output channel c reads frame channel
    ``chan[c]`` and is ``value * scale[c] + bias[c]``. The result is within 1e-5 of
    torch's float resize then normalisation (rows are blended before columns, and the
    normalisation is one multiply-add).
    """
    flat = frame.reshape(frame.shape[0], -1)
    _resize_rows(flat, out, rows.first, rows.second, rows.lam, cols.first, cols.second,
                 cols.lam, chan, scale, bias, start, stop)


@_jit
def _argmax(planes, labels, best):
    for k in range(planes.shape[1]):
        top = planes[0, k]
        index = 0
        for c in range(1, planes.shape[0]):
            if planes[c, k] > top:
                top = planes[c, k]
                index = c
        labels[k] = index
        best[k] = top


def argmax(planes: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Labels (``dtype``) and maxima over axis 0 of (C, ...) float32; the first max wins."""
    flat = np.ascontiguousarray(planes).reshape(planes.shape[0], -1)
    labels = np.empty(flat.shape[1], dtype)
    best = np.empty(flat.shape[1], np.float32)
    _argmax(flat, labels, best)
    return labels.reshape(planes.shape[1:]), best.reshape(planes.shape[1:])

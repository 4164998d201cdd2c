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
* :func:`argmax` -- labels and maxima of (C, n) logits, the first maximum winning;
* :func:`mixed_cells` -- the cells whose four corner labels disagree, listed;
* :func:`fix_cells` -- every pixel of the given mixed cells, interpolated over all
  classes from its cell's four corners, straight into the label map (and, if asked,
  its exact confidence into another); :func:`copy_cells` moves those pixels.

``softmax_loops`` holds the confidence's loops, built with :func:`loop` as these are.

Without numba (an optional extra: ``pip install numba``) or with ``CANET_ROS_NUMBA=0``
the callers keep their OpenCV/numpy paths; the functions still run as plain Python,
which the tests use on tiny inputs. Compiled code is cached by numba (``cache=True``),
so only a machine's first start pays the compile (docs/performance.md).
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable

import numpy as np

__all__ = ["AxisTables", "ENV", "argmax", "available", "copy_cells", "fix_cells",
           "identity_samples", "installed", "loop", "loops_for", "mixed_cells",
           "resize_normalise"]

ENV = "CANET_ROS_NUMBA"
# Taylor coefficients of 2^u = exp(u ln 2), |u| <= 1/2: (ln 2)^k / k!, k = 6 .. 0 (Horner
# order), within 2e-7 relative: with 2^n from exponent bits, the loops' vectorised exp.
_LN2 = 0.6931471805599453
EXP2_TAYLOR = np.array([_LN2 ** 6 / 720, _LN2 ** 5 / 120, _LN2 ** 4 / 24, _LN2 ** 3 / 6,
                        _LN2 ** 2 / 2, _LN2, 1.0], np.float32)
# Pixels that fix_cells interpolates at once (whole cells; at 11 classes 45 KB of values).
_BATCH = 1024
log = logging.getLogger("canet_ros.inference")


def available() -> bool:
    """Whether the compiled loops are in use (numba imports and ``CANET_ROS_NUMBA`` != 0)."""
    return os.environ.get(ENV, "1").strip() != "0" and installed()


def installed() -> bool:
    """Whether numba imports, whatever ``CANET_ROS_NUMBA`` says."""
    return _numba() is not None


def loops_for(device_type: str) -> str | None:
    """Say which loops a frame path on ``device_type`` runs: "numba", "opencv", None (GPU)."""
    if device_type != "cpu":
        return None
    return "numba" if available() else "opencv"


@functools.lru_cache(maxsize=1)
def _numba() -> Any:
    # Imported on first use (0.3 s): a CUDA engine never needs it.
    try:
        import numba
    except ImportError:
        return None
    except Exception as exc:  # noqa: BLE001 -- a broken install must not stop the node
        log.warning("numba does not load (%s); the CPU frame path uses OpenCV/numpy", exc)
        return None
    return numba


class _Loop:
    """A loop compiled on its first call when :func:`available`, else run as Python."""

    def __init__(self, fn: Callable[..., Any], contract: bool = False):
        self.python, self._compiled, self._contract = fn, None, contract
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        if not available():
            return self.python(*args)
        if self._compiled is None:
            self._compiled = _compile(self.python, self._contract)
        return self._compiled(*args)


def _compile(fn: Callable[..., Any], contract: bool = False) -> Callable[..., Any]:
    # nogil: a helper thread runs part of the work meanwhile. error_model numpy: no
    # division checks in the loops. cache: compiled once per machine.
    options: dict[str, Any] = {"nogil": True, "error_model": "numpy", "boundscheck": False}
    if contract:  # fused multiply-adds (a polynomial: 20 % faster, rounding only)
        options["fastmath"] = {"contract"}
    try:
        return _numba().njit(cache=True, **options)(fn)
    except RuntimeError as exc:  # no writable cache (a read-only install and $HOME)
        log.warning("numba cannot cache its loops (%s); they compile at every start", exc)
        return _numba().njit(**options)(fn)


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
def _mixed_cells(labels, cells):
    height, width = labels.shape
    count = 0
    mixed = np.empty(width + 1, np.bool_)
    for i in range(height + 1):
        # Cell (i, j) lies between label rows i-1 and i, columns j-1 and j, edges
        # replicated, as upsample.mixed_cells; the row's flags first (no branches),
        # then the few mixed ones listed.
        top, bottom = labels[max(i - 1, 0)], labels[min(i, height - 1)]
        mixed[0] = top[0] != bottom[0]
        for j in range(1, width):
            a = top[j - 1]
            mixed[j] = (a != top[j]) | (a != bottom[j - 1]) | (a != bottom[j])
        mixed[width] = top[width - 1] != bottom[width - 1]
        for j in range(width + 1):
            if mixed[j]:
                cells[count] = i * (width + 1) + j
                count += 1
    return count


def mixed_cells(labels: np.ndarray) -> np.ndarray:
    """Flat indices of the mixed cells of (h, w) labels: ``upsample.mixed_cells``'s, listed."""
    height, width = labels.shape
    cells = np.empty((height + 1) * (width + 1), np.int64)
    return cells[:_mixed_cells(np.ascontiguousarray(labels), cells)]


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


@_jit
def _fix_cells(low, ci, cj, samples, cells, out, conf, coef, palette, colour):
    sy0, sy1, sly, sx0, sx1, slx = samples
    ylo, yhi, ystart, ycount, ylam, xlo, xhi, xstart, xcount, xlam = cells
    classes = low.shape[2]
    want, paint = conf.shape[0] > 0, colour.shape[0] > 0
    slots, rows = 1, 1
    for j in range(xcount.shape[0]):
        slots = max(slots, xcount[j])
    for i in range(ycount.shape[0]):
        rows = max(rows, ycount[i])
    # Neighbouring mixed cells share corners: each is made once and kept per column
    # for the two rows in use (told apart by parity). Everything is written out in this
    # one function: numba's calls pass each array with reference counting, 20x slower.
    cache = np.empty((2, sx0.shape[0], classes), np.float32)
    tag = np.full((2, sx0.shape[0]), -1, np.int64)
    top = np.empty((slots, classes), np.float32)
    step = np.empty((slots, classes), np.float32)
    # Pixels go in batches of whole cells, class-major: the argmax (and the softmax
    # sums) then run across pixels, which LLVM vectorises, where one pixel's chain of
    # compare-and-select over its classes was latency-bound (~50 ns a pixel).
    batch = max(_BATCH, rows * slots)
    values = np.empty((classes, batch), np.float32)
    where_y, where_x = np.empty(batch, np.int64), np.empty(batch, np.int64)
    best, total = np.empty(batch, np.float32), np.empty(batch, np.float32)
    label = np.empty(batch, np.int32)
    bits = np.empty(batch, np.int32)
    power = bits.view(np.float32)  # 2^n, made from its exponent bits
    c6, c5, c4, c3, c2, c1, c0 = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6]
    log2e, floor_t, scale = np.float32(1.4426950408889634), np.float32(-125), np.float32(255)
    n = 0
    while n < ci.shape[0]:
        m = 0
        while n < ci.shape[0] and m + rows * slots <= batch:
            i, j = ci[n], cj[n]
            n += 1
            for corner in range(4):
                r = ylo[i] if corner < 2 else yhi[i]
                c = xlo[j] if corner % 2 == 0 else xhi[j]
                slot = r & 1
                if tag[slot, c] != r:
                    # The input's logits at sample (r, c), bilinear in ``low`` as in
                    # ``lowres.SparseLogits`` (identity tables: ``low``'s own).
                    tag[slot, c] = r
                    wy, wx = sly[r], slx[c]
                    a, b, p, q = sy0[r], sy1[r], sx0[c], sx1[c]
                    for k in range(classes):
                        t = (low[a, q, k] - low[a, p, k]) * wx + low[a, p, k]
                        u = (low[b, q, k] - low[b, p, k]) * wx + low[b, p, k]
                        cache[slot, c, k] = (u - t) * wy + t
            s0, s1, left, right = ylo[i] & 1, yhi[i] & 1, xlo[j], xhi[j]
            x0, nx = xstart[j], xcount[j]
            for q in range(nx):
                # As upsample._fix_chunk, the same float operations in its order; what
                # depends on the column only is made once per column.
                wx = xlam[x0 + q]
                for k in range(classes):
                    v0, v1 = cache[s0, left, k], cache[s0, right, k]
                    v2, v3 = cache[s1, left, k], cache[s1, right, k]
                    t = (v1 - v0) * wx + v0
                    top[q, k] = t
                    step[q, k] = (v3 - v2) * wx + v2 - t
            for y in range(ystart[i], ystart[i] + ycount[i]):
                wy = ylam[y]
                for q in range(nx):
                    for k in range(classes):
                        values[k, m] = step[q, k] * wy + top[q, k]
                    where_y[m], where_x[m] = y, x0 + q
                    m += 1
        for e in range(m):
            best[e], label[e] = values[0, e], 0
        for k in range(1, classes):  # the first maximum wins, as torch's argmax
            row = values[k]
            for e in range(m):
                more = row[e] > best[e]
                label[e] = np.int32(k) if more else label[e]
                best[e] = row[e] if more else best[e]
        for e in range(m):
            out[where_y[e], where_x[e]] = label[e]
        if paint:
            for e in range(m):
                y, x, c = where_y[e], where_x[e], label[e]
                colour[y, x, 0], colour[y, x, 1] = palette[c, 0], palette[c, 1]
                colour[y, x, 2] = palette[c, 2]
        if want:  # round(255 * max softmax), as upsample.FixedCells.confidence
            for e in range(m):
                total[e] = 0
            for k in range(classes):
                row = values[k]
                for e in range(m):
                    # exp as softmax_loops': 2^n p(t - n), vectorised
                    t = max((row[e] - best[e]) * log2e, floor_t)
                    whole = np.floor(t + np.float32(0.5))
                    u = t - whole
                    p = (((((c6 * u + c5) * u + c4) * u + c3) * u + c2) * u + c1) * u + c0
                    bits[e] = (np.int32(whole) + np.int32(127)) << 23
                    total[e] += p * power[e]
            for e in range(m):
                conf[where_y[e], where_x[e]] = np.rint(scale / total[e])


def _cell_tables(cells: np.ndarray, grid: Any) -> tuple[np.ndarray, ...]:
    ci, cj = np.divmod(cells, grid.x.count.shape[0])
    ay, ax = grid.y, grid.x
    return ci, cj, (ay.lo, ay.hi, ay.start, ay.count, ay.lam, ax.lo, ax.hi, ax.start,
                    ax.count, ax.lam)


def fix_cells(low: np.ndarray, cells: np.ndarray, samples: tuple[np.ndarray, ...],
              grid: Any, out: np.ndarray, conf: np.ndarray | None = None,
              paint: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Interpolate the pixels of mixed ``cells`` (flat (h+1)*(w+1) indices) into ``out``.

    ``grid`` (an ``upsample.CellGrid``) maps the cells to output pixels; its input is the
    sample grid that ``samples`` -- (y0, y1, ly, x0, x1, lx) tables -- places in ``low``
    (h0, w0, C) float32 (channels last): :func:`identity_samples` when ``low`` is that
    input itself. With ``conf`` (uint8, ``out``'s shape) those pixels' exact confidence,
    round(255 * max softmax), goes there too; with ``paint`` ((256, 3) uint8 palette,
    HxWx3 uint8 colour image) their colours.
    """
    ci, cj, tables = _cell_tables(cells, grid)
    palette, colour = paint if paint is not None else (
        np.zeros((0, 3), np.uint8), np.zeros((0, 0, 3), np.uint8))
    _fix_cells(low, ci, cj, samples, tables, out,
               conf if conf is not None else np.zeros((0, 0), np.uint8), EXP2_TAYLOR,
               palette, colour)


@_jit
def _copy_cells(ci, cj, cells, src, dst):
    ystart, ycount, xstart, xcount = cells[2], cells[3], cells[7], cells[8]
    for n in range(ci.shape[0]):
        i, j = ci[n], cj[n]
        for y in range(ystart[i], ystart[i] + ycount[i]):
            for x in range(xstart[j], xstart[j] + xcount[j]):
                dst[y, x] = src[y, x]


def copy_cells(cells: np.ndarray, grid: Any, src: np.ndarray, dst: np.ndarray) -> None:
    """Copy the pixels of ``cells`` (as in :func:`fix_cells`) from ``src`` to ``dst``."""
    ci, cj, tables = _cell_tables(cells, grid)
    _copy_cells(ci, cj, tables, src, dst)


def identity_samples(h: int, w: int) -> tuple[np.ndarray, ...]:
    """Sample tables that read (C, h, w) logits at their own samples, exactly."""
    ys, xs = np.arange(h, dtype=np.intp), np.arange(w, dtype=np.intp)
    return ys, ys, np.zeros(h, np.float32), xs, xs, np.zeros(w, np.float32)

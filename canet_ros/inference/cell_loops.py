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

"""Compiled loops over the mixed cells of an upsample (``upsample``, ``lowres``).

* :func:`mixed_cells` -- the cells whose four corner labels disagree, listed;
* :func:`fix_cells` -- every pixel of the given mixed cells, interpolated over the
  classes from its cell's four corners, straight into the label map (and, if asked,
  their colour, and their exact confidence into another array);
  :func:`copy_cells` moves those pixels.

The cells' corners (logits at the input's samples, each made once) come first, in one
loop for both cases; then labels alone go cell by cell, over the classes that can still
win in a cell of 16 pixels or more (at the network's 8x, 64): 1.3x faster there. With
the confidence, pixels go in batches, class by class, so that the argmax and the softmax
sums run across pixels, vectorised: the exps' one libm call per value took 2-3 ms at
1920x1200.

Built with ``kernels.loop``: compiled by numba when it is installed, plain Python
otherwise (tests, tiny inputs).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .kernels import EXP2_TAYLOR, loop

__all__ = ["copy_cells", "fix_cells", "identity_samples", "mixed_cells"]

# Fewest pixels in a cell for which fix_cells first drops the classes that cannot win.
_PRUNE = 16
# Pixels that fix_cells interpolates at once (whole cells; at 11 classes 45 KB of values).
_BATCH = 1024


@loop
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


@loop
def _corners(low, ci, cj, samples, cells, out):
    sy0, sy1, sly, sx0, sx1, slx = samples
    ylo, yhi, xlo, xhi = cells[0], cells[1], cells[5], cells[6]
    classes = low.shape[2]
    # Neighbouring mixed cells share corners: each is made once and kept per column
    # for the two rows in use (told apart by parity), then copied to each cell using it.
    cache = np.empty((2, sx0.shape[0], classes), np.float32)
    tag = np.full((2, sx0.shape[0]), -1, np.int64)
    for n in range(ci.shape[0]):
        i, j = ci[n], cj[n]
        for corner in range(4):  # top-left, top-right, bottom-left, bottom-right
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
            for k in range(classes):
                out[n, corner, k] = cache[slot, c, k]


@loop
def _fix_cells(corners, ci, cj, cells, out, conf, coef, palette, colour):
    # With the confidence (see _fix_labels for the labels alone). Everything is written
    # out in this one function: numba's calls pass each array with reference counting,
    # 20x slower than the loops themselves at a cell's size.
    ystart, ycount, ylam = cells[2], cells[3], cells[4]
    xstart, xcount, xlam = cells[7], cells[8], cells[9]
    classes = corners.shape[2]
    paint = colour.shape[0] > 0
    slots, rows = 1, 1
    for j in range(xcount.shape[0]):
        slots = max(slots, xcount[j])
    for i in range(ycount.shape[0]):
        rows = max(rows, ycount[i])
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
            cell, i, j = n, ci[n], cj[n]
            n += 1
            x0, nx = xstart[j], xcount[j]
            for q in range(nx):
                # As upsample._fix_chunk, the same float operations in its order; what
                # depends on the column only is made once per column.
                wx = xlam[x0 + q]
                for k in range(classes):
                    v0, v1 = corners[cell, 0, k], corners[cell, 1, k]
                    v2, v3 = corners[cell, 2, k], corners[cell, 3, k]
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
        # round(255 * max softmax), as upsample.FixedCells.confidence
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


@loop
def _fix_labels(corners, ci, cj, cells, out, palette, colour):
    # As _fix_cells for the labels alone, over the classes that can win in each cell:
    # at any pixel the best class is at least L = max_c (min of c at the four corners),
    # and class k at most its largest corner, so a k whose largest corner is below L
    # (by more than the float rounding of the interpolation) never wins. Usually two
    # or three classes remain; the others' interpolation is skipped, not their order.
    ystart, ycount, ylam = cells[2], cells[3], cells[4]
    xstart, xcount, xlam = cells[7], cells[8], cells[9]
    classes = corners.shape[2]
    paint = colour.shape[0] > 0
    slots = 1
    for j in range(xcount.shape[0]):
        slots = max(slots, xcount[j])
    top = np.empty((slots, classes), np.float32)
    step = np.empty((slots, classes), np.float32)
    every, kept = np.arange(classes), np.empty(classes, np.int64)
    for n in range(ci.shape[0]):
        i, j = ci[n], cj[n]
        count, pick = classes, every
        # A frame's cells (~4 pixels) cost more to prune than their pixels do to label.
        if ycount[i] * xcount[j] >= _PRUNE:
            floor_, size = np.float32(-np.inf), np.float32(1)
            for k in range(classes):
                v0, v1 = corners[n, 0, k], corners[n, 1, k]
                v2, v3 = corners[n, 2, k], corners[n, 3, k]
                floor_ = max(floor_, min(min(v0, v1), min(v2, v3)))
                size = max(size, max(max(abs(v0), abs(v1)), max(abs(v2), abs(v3))))
            # Rounding moves an interpolated value by a few ulp of the corners' size.
            floor_ -= np.float32(1e-5) * size
            count, pick = 0, kept
            for k in range(classes):
                v0, v1 = corners[n, 0, k], corners[n, 1, k]
                v2, v3 = corners[n, 2, k], corners[n, 3, k]
                if max(max(v0, v1), max(v2, v3)) >= floor_:
                    kept[count] = k
                    count += 1
        x0, nx = xstart[j], xcount[j]
        for q in range(nx):
            wx = xlam[x0 + q]
            if count == classes:  # every class: contiguous, so LLVM vectorises it
                for k in range(classes):
                    v0, v1 = corners[n, 0, k], corners[n, 1, k]
                    v2, v3 = corners[n, 2, k], corners[n, 3, k]
                    t = (v1 - v0) * wx + v0
                    top[q, k] = t
                    step[q, k] = (v3 - v2) * wx + v2 - t
                continue
            for h in range(count):
                k = pick[h]
                v0, v1 = corners[n, 0, k], corners[n, 1, k]
                v2, v3 = corners[n, 2, k], corners[n, 3, k]
                t = (v1 - v0) * wx + v0
                top[q, h] = t
                step[q, h] = (v3 - v2) * wx + v2 - t
        for y in range(ystart[i], ystart[i] + ycount[i]):
            wy = ylam[y]
            for q in range(nx):
                best, at = step[q, 0] * wy + top[q, 0], 0
                for h in range(1, count):  # in class order: the first maximum wins
                    value = step[q, h] * wy + top[q, h]
                    more = value > best
                    at = h if more else at
                    best = value if more else best
                label = pick[at]
                out[y, x0 + q] = label
                if paint:
                    colour[y, x0 + q, 0] = palette[label, 0]
                    colour[y, x0 + q, 1] = palette[label, 1]
                    colour[y, x0 + q, 2] = palette[label, 2]


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
    corners = np.empty((len(ci), 4, low.shape[2]), np.float32)
    _corners(low, ci, cj, samples, tables, corners)
    if conf is None:
        _fix_labels(corners, ci, cj, tables, out, palette, colour)
    else:
        _fix_cells(corners, ci, cj, tables, out, conf, EXP2_TAYLOR, palette, colour)


@loop
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

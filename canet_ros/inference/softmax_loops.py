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

"""Softmax sums at the network's size straight from the 1/8 logits, one compiled pass.

The confidence needs ``S = sum_c exp(logit_c - max)`` at every network pixel
(``upsample``). Without this loop the runner upsamples every class plane to the
network's size (23 MB at 1024x512, ~5 ms) and OpenCV then takes the sums (~5 ms). Here
each network row is made from the 1/8 logits and reduced while it is in cache:

* rows first: the two 1/8 rows blended, all classes, with the reference's row weights;
* then columns. Where the network is a whole multiple ``f`` of the 1/8 width (the
  network's own 8x), output column ``f*j + r`` reads 1/8 columns ``j - 1 + o_r`` and
  ``j + o_r`` with one weight per phase ``r``: a contiguous pass over ``j`` per phase,
  which LLVM vectorises. Other widths gather their columns first (same values, slower).
* ``exp`` is ``2^n * p(t - n)`` with ``t = x * log2(e)``, ``n`` the nearest integer and
  ``p`` the degree-6 Taylor polynomial of ``2^u``: within 2e-7 relative, and vectorised,
  where numba's ``math.exp`` is one libm call per value (6x slower here).
* the doubt ``S - 1`` (``doubt=True``) is summed relative to the runner-up class
  ``m2``, with every term capped at 1: ``S - 1 = exp(m2 - max) * (sum - 1)`` and
  ``sum - 1`` lies in [1, C - 1]. Taken as ``S`` minus 1 it cancelled: once every other
  class is ~16.6 below the top, ``S`` is 1 in float32, and the floor then put in for
  the doubt raised the confidence spread around that sample above the true value.

Values equal the sums over the upsampled logits up to float rounding (a test compares
with torch). Run as plain Python without numba (``kernels``), for tests on tiny inputs.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .kernels import EXP2_TAYLOR, loop

__all__ = ["ColumnPlan", "column_plan", "softmax_sums", "spread_confidence"]


ColumnPlan = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def column_plan(x0: np.ndarray, x1: np.ndarray, lx: np.ndarray, n_in: int) -> ColumnPlan:
    """How output columns sample ``n_in`` input columns: (gather x0, x1, lx, offsets, lams).

    ``x0``/``x1``/``lx`` are the reference's per-column tables. Phases when they reduce
    to them exactly (same weights on the same inputs, edges replicated); otherwise the
    tables are kept for a gather and one identity phase follows it.
    """
    n_out = len(x0)
    none = np.zeros(0, np.intp)
    if n_out % n_in == 0 and n_in > 2:
        factor = n_out // n_in
        middle = n_in // 2
        cols = middle * factor + np.arange(factor)
        offsets = (x0[cols] - middle + 1).astype(np.intp)
        lams = lx[cols].astype(np.float32)
        if _same_weights((x0, x1, lx), _phase_tables(offsets, lams, n_in), n_in):
            return none, none, np.zeros(0, np.float32), offsets, lams
    return (np.asarray(x0, np.intp), np.asarray(x1, np.intp), np.asarray(lx, np.float32),
            np.ones(1, np.intp), np.zeros(1, np.float32))


def _phase_tables(offsets: np.ndarray, lams: np.ndarray, n_in: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column tables the phases amount to (padding = the edge column replicated)."""
    factor = len(offsets)
    j = np.repeat(np.arange(n_in), factor)
    phase = np.tile(np.arange(factor), n_in)
    first = np.clip(j + offsets[phase] - 1, 0, n_in - 1)
    second = np.clip(j + offsets[phase], 0, n_in - 1)
    return first, second, lams[phase]


def _same_weights(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], n_in: int) -> bool:
    dense = []
    for first, second, lam in (a, b):
        weights = np.zeros((len(first), n_in), np.float64)
        rows = np.arange(len(first))
        np.add.at(weights, (rows, first), 1.0 - lam.astype(np.float64))
        np.add.at(weights, (rows, second), lam.astype(np.float64))
        dense.append(weights)
    return dense[0].shape == dense[1].shape and bool(np.allclose(*dense, rtol=0, atol=1e-6))


@loop(contract=True)
def _sums(low, y0, y1, ly, plan, start, stop, out, coef, doubt):
    gx0, gx1, glx, offset, lam = plan
    classes, _, width = low.shape
    gathered = gx0.shape[0] > 0
    n = gx0.shape[0] if gathered else width
    factor = offset.shape[0]
    blend = np.empty((classes, width), np.float32)
    rows = np.empty((classes, n + 2), np.float32)
    values = np.empty((classes, n), np.float32)
    peak = np.empty(n, np.float32)
    second = np.empty(n, np.float32)
    total = np.empty(n, np.float32)
    bits = np.empty(n, np.int32)
    power = bits.view(np.float32)  # 2^n, made from its exponent bits
    log2e, floor_t = np.float32(1.4426950408889634), np.float32(-125)
    c6, c5, c4, c3, c2, c1, c0 = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6]
    bits_of = total.view(np.int32)
    ln2 = np.float32(0.6931471805599453)
    floor_log = np.float32(-126 * 0.6931471805599453)  # log of float32's smallest normal
    base = second if doubt else peak  # the doubt's terms: relative to the runner-up
    l3, l5, l7, l9 = np.float32(1 / 3), np.float32(1 / 5), np.float32(1 / 7), np.float32(1 / 9)
    for i in range(start, stop):
        a, b, wy = y0[i], y1[i], ly[i]
        for k in range(classes):
            for j in range(width):
                p = low[k, a, j]
                blend[k, j] = (low[k, b, j] - p) * wy + p
            for j in range(n):
                if gathered:
                    p = blend[k, gx0[j]]
                    rows[k, j + 1] = (blend[k, gx1[j]] - p) * glx[j] + p
                else:
                    rows[k, j + 1] = blend[k, j]
            rows[k, 0] = rows[k, 1]
            rows[k, n + 1] = rows[k, n]
        for r in range(factor):
            o, wx = offset[r], lam[r]
            for j in range(n):
                peak[j] = -np.inf
                second[j] = -np.inf
                total[j] = 0
            for k in range(classes):
                # Slices: indices known non-negative, so no wraparound and no gathers.
                left, right = rows[k, o:], rows[k, o + 1:]
                for j in range(n):
                    p = left[j]
                    v = (right[j] - p) * wx + p
                    values[k, j] = v
                    if doubt:  # the runner-up (the max again where two tie)
                        second[j] = max(second[j], min(peak[j], v))
                    peak[j] = max(peak[j], v)
            for k in range(classes):
                for j in range(n):
                    # The bound first: min(0, NaN) is 0 (Python's rule), so a NaN never
                    # reaches the int32 conversion (its result left open) and counts 1:
                    # the sums stay in [1, C] whatever the logits (255 / S cannot overflow).
                    t = max(floor_t, min(np.float32(0), (values[k, j] - base[j]) * log2e))
                    whole = np.floor(t + np.float32(0.5))
                    u = t - whole
                    p = (((((c6 * u + c5) * u + c4) * u + c3) * u + c2) * u + c1) * u + c0
                    bits[j] = (np.int32(whole) + np.int32(127)) << 23
                    total[j] += p * power[j]
            if doubt:  # log(S - 1): what the confidence interpolates (upsample)
                for j in range(n):
                    total[j] -= np.float32(1)  # 1 to C - 1 (0 for a single class)
                for j in range(n):
                    # log(m 2^e) = e ln 2 + log m with m in [sqrt(1/2), sqrt(2)), log m
                    # = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172: five terms of
                    # its series leave 1e-9; numpy's log was one more pass (0.6 ms).
                    word = bits_of[j]
                    big = (word & 0x7FFFFF) > 0x3504F3  # mantissa above sqrt(2)
                    exponent = ((word >> 23) & 0xFF) - 127 + (1 if big else 0)
                    bits[j] = (word & 0x7FFFFF) | (0x3F000000 if big else 0x3F800000)
                    m = power[j]
                    q = (m - np.float32(1)) / (m + np.float32(1))
                    q2 = q * q
                    series = (((q2 * l9 + l7) * q2 + l5) * q2 + l3) * q2 + np.float32(1)
                    log_rest = np.float32(exponent) * ln2 + np.float32(2) * q * series
                    doubt = log_rest + (second[j] - peak[j])
                    # NaN (NaN or inf logits) to the floor too: a NaN sample spread by the
                    # resize would poison its neighbours' rows. Those pixels are made
                    # again (postprocess.fix_nonfinite): the floor's 255 is not kept.
                    total[j] = doubt if doubt >= floor_log else floor_log
            for j in range(n):
                out[i, j * factor + r] = total[j]


def softmax_sums(low: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray],
                 plan: ColumnPlan, out: np.ndarray, start: int = 0,
                 stop: int | None = None, doubt: bool = False) -> None:
    """Fill rows ``start:stop`` of ``out`` (H, W) with S of the bilinearly upsampled logits.

    ``low`` is (C, h, w) float32; ``rows`` the reference's (y0, y1, ly) tables of the H
    output rows; ``plan`` from :func:`column_plan` for the W output columns. ``doubt``:
    write ``log(S - 1)`` instead, ``S - 1`` summed over the classes but the top one (no
    cancellation), floored at ``log(2^-126)`` (``upsample.spread_doubt``'s first step).
    Values are finite whatever the logits; where those are not, they mean nothing and
    the caller makes those pixels again (``postprocess.fix_nonfinite``).
    """
    low = np.ascontiguousarray(low, np.float32)
    y0, y1, ly = rows
    _sums(low, y0, y1, ly, plan, start, out.shape[0] if stop is None else stop, out, EXP2_TAYLOR,
          bool(doubt))


@loop(contract=True)
def _confidence(wide, y0, y1, ly, out, coef):
    c6, c5, c4, c3, c2, c1, c0 = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6]
    log2e, low, high = np.float32(1.4426950408889634), np.float32(-125), np.float32(125)
    width = wide.shape[1]
    bits = np.empty(width, np.int32)
    power = bits.view(np.float32)
    scale, one = np.float32(255), np.float32(1)
    for i in range(out.shape[0]):
        above, below, wy, target = wide[y0[i]], wide[y1[i]], ly[i], out[i]
        for j in range(width):
            p = above[j]
            t = min(high, max(low, ((below[j] - p) * wy + p) * log2e))  # NaN: low
            whole = np.floor(t + np.float32(0.5))
            u = t - whole
            p = (((((c6 * u + c5) * u + c4) * u + c3) * u + c2) * u + c1) * u + c0
            bits[j] = (np.int32(whole) + np.int32(127)) << 23
            target[j] = np.rint(scale / (one + p * power[j]))


def spread_confidence(doubt: np.ndarray, grid: Any, out: np.ndarray) -> np.ndarray:
    """uint8 ``round(255 / (1 + exp(d)))``, ``d`` the bilinear upsample of ``doubt``.

    ``doubt`` is (h, w) float32 at ``grid``'s input size (an ``upsample.CellGrid``),
    ``out`` (H, W) uint8 at its output size. OpenCV resizes the rows (its horizontal pass
    is faster than any gather here); one loop then blends each pair of rows and takes
    the confidence, where before OpenCV's 2-D resize wrote frame-size floats and four
    passes (exp, add, divide, convert) read them back.
    """
    h_in, w_out = grid.in_hw[0], grid.out_hw[1]
    wide = cv2.resize(np.ascontiguousarray(doubt, np.float32), (w_out, h_in),
                      interpolation=cv2.INTER_LINEAR)
    src = grid.y.src
    _confidence(wide, src, np.minimum(src + 1, h_in - 1), grid.y.lam, out, EXP2_TAYLOR)
    return out

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

"""Labels, colour and confidence at the frame's size from logits at the network's (CPU).

The result is what the reference computes -- the logits upsampled bilinearly
(align_corners=False) to the output size, then argmax, palette and max softmax -- but
the upsampled logits (classes x output pixels in float32, 100 MB at 1920x1200) are
never built:

* Every output pixel lies in one *cell*, the square between four neighbouring logit
  samples, and its upsampled logit vector is a convex combination of those four.
  Where all four have the same argmax ``c``, so has every convex combination of them:
  ``c`` beats any class ``k`` at each corner, so it beats ``k`` in any weighted mean.
  Such a cell's pixels get ``c`` by a gather, exactly.
* Only the cells whose corners disagree ("mixed"; about 2 % of the cells on CamVid
  scenes at 1024x512) are interpolated, over all classes, at their own pixels.
* Confidence (max softmax) is exact in mixed cells. Elsewhere ``log(S - 1)``, with
  ``S = sum(exp(logit - max))``, is interpolated and ``255 / (1 + exp(.))`` taken: exact
  when one other class carries the doubt, and never above the true value otherwise
  (log-sum-exp is convex). docs/performance.md gives the measured agreement. ``S - 1``
  is summed over the other classes, never taken from ``S``: past a gap of ~16.6 ``S``
  is 1 in float32, and a floor for the lost doubt raised the spread confidence.

Nothing here imports torch; ``device_ops`` is the same design in torch ops.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from . import image_loops, kernels

__all__ = ["CellGrid", "FixedCells", "GridCache", "LogitSource", "argmax_classes",
           "confidence_at_size", "gather", "lowres_doubt", "lowres_softmax_sum", "mixed_cells",
           "pack_palette", "rounded", "spread_doubt", "unpack_colour"]
# Floor of the doubt S - 1: float32's smallest normal, 2^-126 (log -87.3). A single class
# has no doubt, and past a gap of 87 exp lands on denormals or 0 (a floor only lowers
# the confidence).
_TINY = np.finfo(np.float32).tiny

# Upper bound on classes x slots x cells held at once in the mixed-cell pass (floats).
_CHUNK_ELEMENTS = 1 << 22
# Samples per class that the network-size passes (argmax, softmax sums) take at a time:
# a tile's working set (one class's 128 KB, the running max, labels, mask) stays in a
# core's L2 across the passes over it, so each logit comes from memory once rather than
# once per pass: 1.4x faster than whole planes at 1024x512 (docs/performance.md), the
# same results element by element.
_TILE = 1 << 15


@dataclass(frozen=True)
class _Axis:
    src: np.ndarray    # (n_out,) first source sample of each output index (reference's i0)
    lam: np.ndarray    # (n_out,) float32 weight of the second sample
    start: np.ndarray  # (n_in + 1,) first output index of cell I (cells -1 .. n_in-1)
    count: np.ndarray  # (n_in + 1,) output indices in cell I
    lo: np.ndarray     # (n_in + 1,) source samples bounding cell I, clamped to the edges
    hi: np.ndarray


def _axis(n_out: int, n_in: int) -> _Axis:
    # Half-pixel centres; the reference clamps negative positions to 0.
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    cell = np.floor(pos).astype(np.intp) + 1
    clamped = np.maximum(pos, 0.0)
    src = np.minimum(np.floor(clamped).astype(np.intp), n_in - 1)
    lam = (clamped - src).astype(np.float32)
    cells = np.arange(n_in + 1)
    start = np.searchsorted(cell, cells).astype(np.intp)
    count = np.bincount(cell, minlength=n_in + 1).astype(np.intp)
    lo = np.clip(cells - 1, 0, n_in - 1)
    hi = np.clip(cells, 0, n_in - 1)
    return _Axis(src, lam, start, count, lo, hi)


class CellGrid:
    """Index tables for one (network size, output size) pair; built once, reused."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]):
        self.in_hw, self.out_hw = tuple(in_hw), tuple(out_hw)
        self.y = _axis(out_hw[0], in_hw[0])
        self.x = _axis(out_hw[1], in_hw[1])
        self.slots = (int(self.y.count.max()), int(self.x.count.max()))


class GridCache:
    """The cell tables last used, by (in size, out size, kind); the oldest go past ``size``."""

    def __init__(self, size: int):
        self.size, self._grids = size, OrderedDict()

    def get(self, in_hw: tuple[int, int], out_hw: tuple[int, int],
            make: Callable[[CellGrid], Any] | None = None) -> Any:
        """Return the grid (``make`` of it, e.g. the device copy); None if the sizes match."""
        in_hw, out_hw = tuple(in_hw), tuple(out_hw)
        if out_hw == in_hw:
            return None
        key = (in_hw, out_hw, make is not None)
        if key not in self._grids:
            while len(self._grids) >= self.size:
                self._grids.popitem(last=False)
            cells = CellGrid(in_hw, out_hw)
            self._grids[key] = make(cells) if make is not None else cells
        self._grids.move_to_end(key)
        return self._grids[key]


def gather(grid: CellGrid, lowres: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each output pixel takes a corner sample of its cell: right wherever the cell is uniform.

    With the compiled loops, 1- and 2-byte values gather each pixel's first source
    sample (``grid.y.src``, ``grid.x.src``: a corner) in ``image_loops``, copying
    repeated rows. Otherwise OpenCV's exact nearest-neighbour resize picks the sample
    nearest to the pixel's position, which is always one of its cell's corners too (a
    test checks this); it is twice as fast as gathering with numpy. 4-byte values travel
    as int32, which OpenCV copies bit for bit. ``out`` (1- or 2-byte values): where to.
    """
    if lowres.dtype.itemsize < 4 and kernels.available():
        return image_loops.gather_rows(lowres, grid.y.src, grid.x.src,
                                       image_loops.usable(out, grid.out_hw, lowres.dtype))
    size = grid.out_hw[::-1]
    if lowres.dtype.itemsize == 4:
        near = cv2.resize(lowres.view(np.int32), size, interpolation=cv2.INTER_NEAREST_EXACT)
        return near.view(lowres.dtype)
    return cv2.resize(lowres, size, dst=out, interpolation=cv2.INTER_NEAREST_EXACT)


def argmax_classes(planes: np.ndarray, dtype: np.dtype, labels: np.ndarray | None = None,
                   best: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Argmax and max over axis 0 of (C, ...) float32, the first maximum winning (as torch).

    One class at a time with OpenCV, tile by tile (``_TILE``): several times faster than
    numpy's argmax over a leading axis, and memory stays at a few planes whatever the
    class count. Results go into ``labels`` and ``best`` when given (contiguous, of
    ``planes.shape[1:]``).
    """
    shape = planes.shape[1:]
    # (n, 1) columns: OpenCV takes a 1-D array of up to 4 values for a Scalar, and a
    # frame with a single mixed cell has that few values per class.
    flat = planes.reshape(planes.shape[0], -1, 1)
    labels = np.empty(shape, dtype) if labels is None else labels
    best = np.empty(shape, np.float32) if best is None else best
    flat_labels, flat_best = labels.reshape(-1, 1), best.reshape(-1, 1)
    size = flat.shape[1]
    fill = np.empty((min(size, _TILE), 1), dtype)
    for start in range(0, size, _TILE):
        end = min(start + _TILE, size)
        _argmax_tile(flat[:, start:end], flat_labels[start:end], flat_best[start:end],
                     fill[:end - start])
    return labels, best


def _argmax_tile(flat: np.ndarray, labels: np.ndarray, best: np.ndarray,
                 fill: np.ndarray) -> None:
    labels.fill(0)
    np.copyto(best, flat[0])
    for c in range(1, flat.shape[0]):
        greater = cv2.compare(flat[c], best, cv2.CMP_GT)
        fill.fill(c)
        cv2.copyTo(fill, greater, labels)
        cv2.max(best, flat[c], dst=best)


def lowres_softmax_sum(logits: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``S = sum_c exp(logit_c - max)`` per sample, float32 (1 / S is the max softmax)."""
    total = np.zeros(best.shape, np.float32)
    column = total.reshape(-1, 1)
    peak = best.reshape(-1, 1)  # (n, 1) columns: see argmax_classes
    flat = logits.reshape(logits.shape[0], -1, 1)
    size = flat.shape[1]
    tmp = np.empty((min(size, _TILE), 1), np.float32)
    for start in range(0, size, _TILE):  # tile by tile: see _TILE
        end = min(start + _TILE, size)
        part, part_peak, work = column[start:end], peak[start:end], tmp[:end - start]
        for plane in flat[:, start:end]:
            cv2.subtract(plane, part_peak, dst=work)
            cv2.exp(work, dst=work)
            cv2.add(part, work, dst=part)
    return total


def lowres_doubt(logits: np.ndarray, best: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``S - 1`` per sample, float32: ``exp(logit_c - max)`` summed over ``c != labels``.

    ``labels`` (uint8/uint16) and ``best`` are the logits' argmax and max. Each
    plane is added where it is not the label's (a tie at the max adds its 1), so the sum
    keeps its relative precision however small it is.
    """
    total = np.zeros(best.shape, np.float32)
    column = total.reshape(-1, 1)
    peak, label = best.reshape(-1, 1), labels.reshape(-1, 1)  # (n, 1): see argmax_classes
    flat = logits.reshape(logits.shape[0], -1, 1)
    size = flat.shape[1]
    tmp = np.empty((min(size, _TILE), 1), np.float32)
    other = np.empty((min(size, _TILE), 1), np.uint8)
    # The class as an array: OpenCV compares a Scalar wrongly with 1 or 4 labels.
    fill = np.empty((min(size, _TILE), 1), labels.dtype)
    for start in range(0, size, _TILE):  # tile by tile: see _TILE
        end = min(start + _TILE, size)
        part, part_peak, work, mask = (column[start:end], peak[start:end],
                                       tmp[:end - start], other[:end - start])
        for c, plane in enumerate(flat[:, start:end]):
            cv2.subtract(plane, part_peak, dst=work)
            cv2.exp(work, dst=work)
            fill.fill(c)
            cv2.compare(label[start:end], fill[:end - start], cv2.CMP_NE, dst=mask)
            cv2.accumulate(work, part, mask=mask)  # one masked pass (cv2.add's is two)
    return total


def mixed_cells(labels: np.ndarray) -> np.ndarray:
    """(h+1, w+1) bool: cells whose four corners (edges replicated) do not all agree."""
    padded = cv2.copyMakeBorder(labels, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    corner = padded[:-1, :-1]
    return (corner != padded[1:, :-1]) | (corner != padded[:-1, 1:]) | (corner != padded[1:, 1:])


@dataclass
class FixedCells:
    """The pixels of mixed cells: flat output indices, labels, and what confidence needs."""

    index: np.ndarray                 # flat output pixel indices
    labels: np.ndarray
    values: list[np.ndarray]          # per chunk: (C, n) interpolated logits at those pixels
    best: list[np.ndarray]            # per chunk: (n,) their maxima

    def confidence(self) -> np.ndarray:
        """round(255 * max softmax) at ``index``, exact (uint8)."""
        return rounded(self.confidence_values())

    def confidence_values(self) -> np.ndarray:
        """255 * max softmax at ``index`` as float32 (:func:`rounded` makes it uint8), exact."""
        parts = [np.float32(255) / lowres_softmax_sum(v, b) for v, b in
                 zip(self.values, self.best, strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def rounded(values: np.ndarray) -> np.ndarray:
    """Round float32 confidences to uint8 without a warning for a NaN (value unspecified).

    A NaN comes from non-finite logits, and those pixels are made again
    (``postprocess.fix_nonfinite``): numpy's warning about the cast would only be noise.
    """
    with np.errstate(invalid="ignore"):
        return np.rint(values, out=values).astype(np.uint8)


class LogitSource(Protocol):
    """Logits made on demand (``lowres.SparseLogits``) in place of a (C, h, w) array."""

    shape: tuple[int, int, int]

    def take(self, where: np.ndarray) -> np.ndarray:
        """(C, n) float32 logits at flat indices ``where`` of an (h, w) plane."""


def fix_mixed(grid: CellGrid, logits: np.ndarray | LogitSource, mixed: np.ndarray,
              dtype: np.dtype, keep_values: bool = False) -> FixedCells:
    """Interpolate all classes at the pixels of mixed cells and take their argmax."""
    ny, nx = grid.y.count, grid.x.count
    width_in = logits.shape[2]
    cells = np.flatnonzero(mixed)
    ci, cj = np.divmod(cells, mixed.shape[1])
    has_pixels = (ny[ci] > 0) & (nx[cj] > 0)  # downscaling leaves some cells empty
    ci, cj = ci[has_pixels], cj[has_pixels]
    slots = grid.slots[0] * grid.slots[1]
    step = max(1, _CHUNK_ELEMENTS // max(1, logits.shape[0] * slots))
    index, labels, values, best = [], [], [], []
    for s in range(0, len(ci), step):
        with np.errstate(invalid="ignore"):  # inf - inf (a broken model): fix_nonfinite's
            chunk = _fix_chunk(grid, logits, ci[s:s + step], cj[s:s + step], width_in, dtype,
                               keep_values)
        index.append(chunk[0])
        labels.append(chunk[1])
        if keep_values:
            values.append(chunk[2])
            best.append(chunk[3])
    if not index:
        return FixedCells(np.zeros(0, np.intp), np.zeros(0, dtype), [], [])
    return FixedCells(np.concatenate(index), np.concatenate(labels), values, best)


def _fix_chunk(grid: CellGrid, logits: np.ndarray | LogitSource, ci: np.ndarray, cj: np.ndarray,
               width_in: int, dtype: np.dtype, keep_values: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    ay, ax = grid.y, grid.x
    height_out, width_out = grid.out_hw
    classes, m = logits.shape[0], len(ci)
    r0, r1 = ay.lo[ci] * width_in, ay.hi[ci] * width_in
    c0, c1 = ax.lo[cj], ax.hi[cj]
    where = np.concatenate([r0 + c0, r0 + c1, r1 + c0, r1 + c1])
    if isinstance(logits, np.ndarray):
        corners = np.empty((classes, 4 * m), np.float32)
        flat = logits.reshape(classes, -1)
        for c in range(classes):  # per class: each plane is read in order, not all at once
            np.take(flat[c], where, out=corners[c], mode="clip")
    else:
        corners = logits.take(where)
    v00, v01, v10, v11 = (corners[:, k * m:(k + 1) * m] for k in range(4))
    sy, sx = grid.slots
    ys, xs = ay.start[ci], ax.start[cj]
    rows, cols = np.arange(sy)[:, None], np.arange(sx)[:, None]
    # Weights per slot; a slot past a cell's own pixels reads any weight (it is dropped).
    lam_y = ay.lam[np.minimum(ys[None, :] + rows, height_out - 1)]  # (sy, m)
    lam_x = ax.lam[np.minimum(xs[None, :] + cols, width_out - 1)]  # (sx, m)
    # Every slot at once, each value by the same float operations in the same order:
    # top = (v01 - v00) * lam_x + v00, step = (v11 - v10) * lam_x + v10 - top, then
    # top + step * lam_y. A loop over the slots was ~400 small numpy calls at 8x.
    top = np.subtract(v01, v00)[:, None] * lam_x  # (C, sx, m)
    top += v00[:, None]
    step = np.subtract(v11, v10)[:, None] * lam_x
    step += v10[:, None]
    step -= top
    vals = step[:, None] * lam_y[None, :, None]  # (C, sy, sx, m): slot = p * sx + q
    vals += top[:, None]
    vals = vals.reshape(classes, sy * sx, m)
    pixel = ((ys + rows) * width_out)[:, None] + (xs + cols)[None]
    valid = (rows < ay.count[ci])[:, None] & (cols < ax.count[cj])[None]
    keep = valid.reshape(-1)
    # Slots past a cell's own pixel count are computed too (one array op for all cells)
    # and dropped here.
    labels, best = argmax_classes(vals.reshape(classes, -1), dtype)
    picked = vals.reshape(classes, -1)[:, keep] if keep_values else None
    return pixel.reshape(-1)[keep], labels[keep], picked, best[keep]


def spread_doubt(grid: CellGrid, doubt: np.ndarray) -> np.ndarray:
    """Return ``log(S - 1)`` from the network-size ``S - 1`` (``lowres_doubt``), bilinear."""
    # fmax: a NaN (non-finite logits, made again by postprocess.fix_nonfinite) becomes the
    # floor, so that the resize cannot carry it to a neighbour's weight of zero.
    spread = np.log(np.fmax(doubt, _TINY))
    return cv2.resize(spread, grid.out_hw[::-1], interpolation=cv2.INTER_LINEAR)


def confidence_at_size(grid: CellGrid, doubt: np.ndarray) -> np.ndarray:
    """uint8 confidence at the output size from the network-size ``S - 1`` (see top)."""
    spread = spread_doubt(grid, doubt)
    cv2.exp(spread, dst=spread)
    spread += 1.0
    # Not cv2.divide(255.0, ...): OpenCV takes a Python scalar for a 4x1 array, and for
    # 1x1 and 4x1 outputs it then writes a new array instead of ``spread``.
    np.divide(np.float32(255.0), spread, out=spread)
    return cv2.convertScaleAbs(spread)  # rounds to nearest; values lie in (0, 255]


def pack_palette(palette: np.ndarray) -> np.ndarray:
    """(C, 3) uint8 RGB -> (C,) uint32 whose bytes are R, G, B, 0 (one gather per pixel)."""
    packed = np.zeros((len(palette), 4), np.uint8)
    packed[:, :3] = palette
    return packed.view(np.uint32).reshape(-1)


def unpack_colour(packed: np.ndarray, order: str) -> np.ndarray:
    """Unpack HxW uint32 from :func:`pack_palette` into HxWx3 uint8 in ``order``."""
    quad = packed.view(np.uint8).reshape(*packed.shape, 4)
    return cv2.cvtColor(quad, cv2.COLOR_RGBA2RGB if order == "rgb" else cv2.COLOR_RGBA2BGR)

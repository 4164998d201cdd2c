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

"""Labels at a camera's size from the logits before the network's final upsample (CPU).

The reference upsamples the 1/8 logits to the network size (the model's last layer),
then again to the frame's size, and takes the argmax. Both steps are bilinear with
half-pixel centres, so both are cell grids (``upsample``), and the labels come in two:

1. network-size labels from the 1/8 logits: :class:`~.postprocess.FramePost` over the
   1/8 -> network grid, as for frames of the network's size;
2. frame-size labels from those: uniform network cells by a gather, mixed ones
   interpolated from network-size logits at their corners. Those logits are made only
   there (about 3 % of the network's pixels on CamVid scenes at 1024x512), each from
   its four 1/8 samples, by :class:`SparseLogits`.

The network-size logits (classes x pixels, 23 MB at 1024x512) are never built, nor
their argmax: 5 + 6 ms of the 1920x1200 path before (docs/performance.md). With numba,
``cell_loops`` lists and interpolates the mixed cells of both steps in compiled loops (the
same arithmetic; another 4 ms less at 1920x1200), and the confidence comes from the 1/8
logits too: ``softmax_loops`` takes every network pixel's softmax sum from them while
the labels are made, the mixed frame cells get their exact value from the loop that
labels them, and the result is what ``FramePost`` makes from the whole logits, up to
float rounding. Without numba the confidence takes the whole logits, as test-time
augmentation always does.
"""
from __future__ import annotations

import weakref
from concurrent.futures import Executor, Future
from typing import Callable, Mapping, Union

import cv2
import numpy as np

from . import cell_loops, image_loops, kernels, softmax_loops
from . import upsample as up
from .postprocess import FramePost, fix_nonfinite

__all__ = ["SparseLogits", "frame_post_from_lowres"]

# cv2.remap places samples on a 1/32-pixel lattice; positions on it are taken exactly.
_REMAP_STEPS = 32
# OpenCV 5's Python binding wraps images of at most 128 channels (4.x: 512); more
# classes take the numpy path.
_REMAP_MAX_CHANNELS = 128
_REMAP_ROW = 4096


class _Samples:
    """Where each network pixel samples the 1/8 logits: per-axis tables, made once."""

    def __init__(self, grid: up.CellGrid):
        (self.h_in, self.w_in), (self.h_out, self.w_out) = grid.in_hw, grid.out_hw
        self.y0, self.ly = grid.y.src, grid.y.lam[:, None]
        self.x0, self.lx = grid.x.src, grid.x.lam[:, None]
        self.y1 = np.minimum(self.y0 + 1, self.h_in - 1)
        self.x1 = np.minimum(self.x0 + 1, self.w_in - 1)
        pos_y = (np.arange(self.h_out) + 0.5) * (self.h_in / self.h_out) - 0.5
        pos_x = (np.arange(self.w_out) + 0.5) * (self.w_in / self.w_out) - 0.5
        # Exact when every position is a multiple of 1/32 (any factor of 2 up to 16:
        # the network's 8x is one); else the interpolation would move by up to 1/64 px.
        self.on_lattice = all(np.array_equal(p * _REMAP_STEPS, np.round(p * _REMAP_STEPS))
                              for p in (pos_y, pos_x))
        self.pos_y, self.pos_x = pos_y.astype(np.float32), pos_x.astype(np.float32)
        self.compiled = (self.y0, self.y1, grid.y.lam, self.x0, self.x1, grid.x.lam)
        self._lam_x, self._plan = grid.x.lam, None

    @property
    def plan(self) -> softmax_loops.ColumnPlan:
        """Return the columns' plan for ``softmax_loops`` (made on first use)."""
        if self._plan is None:
            self._plan = softmax_loops.column_plan(self.x0, self.x1, self._lam_x, self.w_in)
        return self._plan


_SAMPLES: weakref.WeakKeyDictionary[up.CellGrid, _Samples] = weakref.WeakKeyDictionary()


def _samples(grid: up.CellGrid) -> _Samples:
    tables = _SAMPLES.get(grid)
    if tables is None:
        tables = _SAMPLES[grid] = _Samples(grid)
    return tables


class SparseLogits:
    """Network-size logits of (C, h, w) 1/8 logits, made only at the pixels asked for.

    Stands in for the whole (C, H, W) logits in ``upsample.fix_mixed``: it has their
    ``shape`` and :meth:`take`. Values equal OpenCV's resize of each class plane (the
    runner's upsample) up to float rounding.
    """

    def __init__(self, low: np.ndarray, grid: up.CellGrid):
        if low.shape[1:] != grid.in_hw:
            raise ValueError(f"logits {low.shape[1:]} do not match the grid's {grid.in_hw}")
        self._low, self._tables = low, _samples(grid)
        self.shape = (low.shape[0], *grid.out_hw)
        self._hwc: np.ndarray | None = None

    def take(self, where: np.ndarray) -> np.ndarray:
        """(C, n) float32 logits at flat network-size indices ``where`` (repeats allowed)."""
        # Class-major and contiguous, as the corner arithmetic reads it. Corners shared
        # by neighbouring cells are made once per cell: cheaper than finding repeats.
        return np.ascontiguousarray(self._at(where).T)

    def _at(self, pixels: np.ndarray) -> np.ndarray:
        """(n, C) logits at flat network indices."""
        t = self._tables
        rows, cols = np.divmod(pixels, t.w_out)
        if self._hwc is None:
            self._hwc = np.ascontiguousarray(self._low.transpose(1, 2, 0))
        classes = self._hwc.shape[2]
        if t.on_lattice and classes <= _REMAP_MAX_CHANNELS:
            # remap's output is an image under 32767 px a side: the points as rows of it.
            n = len(pixels)
            size = -(-n // _REMAP_ROW) * _REMAP_ROW
            map_x, map_y = np.zeros(size, np.float32), np.zeros(size, np.float32)
            map_x[:n], map_y[:n] = t.pos_x[cols], t.pos_y[rows]
            picked = cv2.remap(self._hwc, map_x.reshape(-1, _REMAP_ROW),
                               map_y.reshape(-1, _REMAP_ROW), cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
            return picked.reshape(size, classes)[:n]
        flat = self._hwc.reshape(-1, classes)
        r0, r1 = t.y0[rows] * t.w_in, t.y1[rows] * t.w_in
        c0, c1 = t.x0[cols], t.x1[cols]
        top = np.take(flat, r0 + c1, axis=0)
        v00 = np.take(flat, r0 + c0, axis=0)
        top -= v00
        top *= t.lx[cols]
        top += v00
        bottom = np.take(flat, r1 + c1, axis=0)
        v10 = np.take(flat, r1 + c0, axis=0)
        bottom -= v10
        bottom *= t.lx[cols]
        bottom += v10
        bottom -= top
        bottom *= t.ly[rows]
        bottom += top
        return bottom


def frame_post_from_lowres(low: np.ndarray, net_grid: up.CellGrid,
                           frame_grid: up.CellGrid | None, dtype: np.dtype,
                           packed_palette: np.ndarray, helper: Executor | None = None,
                           want_confidence: bool = False,
                           out: Mapping[str, np.ndarray] | None = None,
                           want_colour: bool = False) -> FramePost:
    """Labels (colour; confidence) of (C, h, w) 1/8 logits at the frame's size; see top.

    ``net_grid`` goes from the 1/8 logits to the network size, ``frame_grid`` from there
    to the frame's size (None: the frame is of the network's size). The confidence needs
    the compiled loops (:func:`kernels.available`), which write the frame-size labels,
    colour (``want_colour``) and confidence into ``out``'s "labels", "color" and
    "confidence" arrays where given: ``out`` holds only those of outputs asked for (a colour
    made for an overlay alone must not land in a caller's array). Arrays that do not fit are
    left alone: the engine copies the output in, or names the misfit.
    """
    if frame_grid is not None and frame_grid.in_hw != net_grid.out_hw:
        raise ValueError(f"frame grid starts at {frame_grid.in_hw}, the network size is "
                         f"{net_grid.out_hw}")
    if kernels.available():
        return _compiled(low, net_grid, frame_grid, dtype, packed_palette, helper,
                         want_confidence, out or {}, want_colour)
    if want_confidence:
        raise ValueError("confidence from the 1/8 logits needs the compiled loops (numba)")
    net = FramePost(low, net_grid, dtype, packed_palette, helper=helper)
    if frame_grid is None:
        return net
    return FramePost(SparseLogits(low, net_grid), frame_grid, dtype, packed_palette,
                     helper=helper, labels=net.labels)


def _compiled(low: np.ndarray, net_grid: up.CellGrid, frame_grid: up.CellGrid | None,
              dtype: np.dtype, packed_palette: np.ndarray, helper: Executor | None,
              want_confidence: bool, out: Mapping[str, np.ndarray] | None = None,
              want_colour: bool = False) -> FramePost:
    """Run the same two steps with ``cell_loops``: each mixed cell's pixels in one loop.

    ``want_colour``: at a frame's size, make the RGB colour (``out``'s "color" if given)
    in the same loops as the labels, not in a pass over them afterwards.
    """
    bulk: Bulk | None = None
    out, pool = out or {}, helper
    if want_confidence:
        # Started first: with the labels split across both cores instead and this after
        # them, the frame path took 1-1.5 ms longer at 1920x1200.
        job = (low, net_grid, frame_grid, out.get("confidence"))
        bulk = _Deferred(_confidence_bulk, *job) if pool is None else pool.submit(
            _confidence_bulk, *job)
        helper = None  # that core makes the confidence meanwhile: the labels stay here
    small, _ = kernels.argmax(low, dtype)
    labels = up.gather(net_grid, small, out.get("labels") if frame_grid is None else None)
    hwc = np.ascontiguousarray(low.transpose(1, 2, 0), np.float32)  # a pixel's classes together
    _fix(hwc, cell_loops.mixed_cells(small), cell_loops.identity_samples(*low.shape[1:]), net_grid,
         labels, helper)
    paint = None
    if frame_grid is not None:
        if want_colour and dtype == np.uint8:
            colour = image_loops.usable(out.get("color"), (*frame_grid.out_hw, 3), np.uint8)
            paint = (image_loops.palette_table(packed_palette),
                     np.empty((*frame_grid.out_hw, 3), np.uint8) if colour is None else colour)
        net, labels = labels, _gather(frame_grid, labels, out.get("labels"), paint)
        cells = cell_loops.mixed_cells(net)
        values = np.empty(frame_grid.out_hw, np.uint8) if want_confidence else None
        _fix(hwc, cells, _samples(net_grid).compiled, frame_grid, labels, helper, values, paint)
        if bulk is not None:
            # The mixed cells' exact values go in after the bulk, on the thread making it
            # (it queues behind the bulk: one worker, in order), not on this one.
            patch = (bulk, cells, frame_grid, values)
            bulk = _Deferred(_patched, *patch) if pool is None else pool.submit(_patched, *patch)
    post = (FramePost(low, None, dtype, packed_palette, labels=labels) if bulk is None
            else _WithConfidence(low, dtype, packed_palette, labels, bulk,
                                 (net_grid, frame_grid)))
    post.rgb = paint[1] if paint is not None else None
    return post


def _gather(grid: up.CellGrid, labels: np.ndarray, out: np.ndarray | None,
            paint: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    if paint is None:
        return up.gather(grid, labels, out)
    return image_loops.gather_rows(labels, grid.y.src, grid.x.src,
                                   image_loops.usable(out, grid.out_hw, labels.dtype), *paint)


def _fix(hwc: np.ndarray, cells: np.ndarray, samples: tuple[np.ndarray, ...],
         grid: up.CellGrid, out: np.ndarray, helper: Executor | None,
         conf: np.ndarray | None = None,
         paint: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Mixed ``cells`` into ``out``; with a helper, half of them on the other core."""
    half = len(cells) // 2
    if helper is None or half < 256:
        cell_loops.fix_cells(hwc, cells, samples, grid, out, conf, paint)
        return
    # Cells own disjoint pixels, so the halves never write the same one.
    lower = helper.submit(cell_loops.fix_cells, hwc, cells[half:], samples, grid, out, conf,
                          paint)
    cell_loops.fix_cells(hwc, cells[:half], samples, grid, out, conf, paint)
    lower.result()


def _confidence_bulk(low: np.ndarray, net_grid: up.CellGrid,
                     frame_grid: up.CellGrid | None, out: np.ndarray | None = None
                     ) -> np.ndarray:
    """uint8 confidence everywhere, as ``FramePost`` makes it from network-size logits.

    The softmax sums come straight from the 1/8 logits (``softmax_loops``): the
    network-size logits are not made. Mixed frame cells are patched in afterwards.
    """
    tables = _samples(net_grid)
    total = np.empty(net_grid.out_hw, np.float32)
    softmax_loops.softmax_sums(low, (tables.y0, tables.y1, net_grid.y.lam), tables.plan,
                               total, doubt=frame_grid is not None)
    out_hw = net_grid.out_hw if frame_grid is None else frame_grid.out_hw
    if out is None or out.shape != out_hw or out.dtype != np.uint8:
        out = np.empty(out_hw, np.uint8)  # (a wrong one: the engine says so)
    if frame_grid is None:
        out[...] = np.rint(np.float32(255) / total)
        return out
    # upsample.confidence_at_size, the log in the sums' loop and the rest in one more
    return softmax_loops.spread_confidence(total, frame_grid, out)


def _patched(bulk: Bulk, cells: np.ndarray, grid: up.CellGrid, values: np.ndarray
             ) -> np.ndarray:
    """Return the bulk confidence with the mixed frame cells' exact ``values`` copied in."""
    conf = bulk.result()
    cell_loops.copy_cells(cells, grid, values, conf)
    return conf


class _Deferred:
    """A job run when its result is asked for (no helper thread)."""

    def __init__(self, fn: Callable[..., np.ndarray], *args: object):
        self._fn, self._args = fn, args

    def result(self) -> np.ndarray:
        return self._fn(*self._args)


Bulk = Union[Future, _Deferred]


class _WithConfidence(FramePost):
    """Labels from the 1/8 logits and a confidence made beside them (see top)."""

    def __init__(self, low: np.ndarray, dtype: np.dtype, packed_palette: np.ndarray,
                 labels: np.ndarray, bulk: Bulk,
                 grids: tuple[up.CellGrid, up.CellGrid | None]):
        super().__init__(low, None, dtype, packed_palette, labels=labels)
        self._bulk, self._grids = bulk, grids

    def confidence(self) -> np.ndarray:
        """Return HxW uint8 round(255 * max softmax), exact in the mixed frame cells.

        Where the 1/8 logits are not finite the loops give finite nonsense: those pixels
        are made again (0 for a NaN; see ``postprocess.confidence``), a check of the 1/8
        logits (tens of microseconds) when there are none.
        """
        conf = self._bulk.result()
        fix_nonfinite(conf, self.logits, *self._grids)
        return conf

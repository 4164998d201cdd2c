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

"""Logits -> labels, colour mask, overlay and confidence on the CPU (numpy/OpenCV; no torch).

Semantics, identical on the CUDA path (``device_ops``) up to float rounding: logits at
network size are upsampled bilinearly (align_corners=False) to the output size, then

* labels     = argmax over classes (the first maximum wins on exact ties);
* color      = palette[labels] (RGB);
* overlay    = round((1 - alpha) * frame + alpha * palette_in_frame_order[labels]),
               computed in float32 and rounded to nearest (an exact .5 may go either
               way: OpenCV and torch fuse the multiply-adds differently);
* confidence = round(255 * max softmax); exact at network size and in mixed cells,
               interpolated elsewhere (``upsample``).

How the upsampled logits are avoided: ``upsample``. :class:`FramePost` holds one frame's
intermediate results so that each output is computed only when asked for.
"""
from __future__ import annotations

import functools
from concurrent.futures import Executor, Future
from typing import Any, Callable

import cv2
import numpy as np

from . import image_loops, kernels
from . import upsample as up
from .preprocess import by_rows, share_rows

__all__ = ["FramePost", "blend_cpu", "colorize_cpu", "exact_confidence", "fix_nonfinite",
           "flip_tta_logits", "label_dtype", "labels_cpu"]


def flip_tta_logits(logits: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """(C, h, w) logits of a frame and of its mirror image -> log of their mean softmax.

    The log keeps the rest of the path unchanged: argmax gives the averaged decision and
    softmax of it gives back the averaged probabilities for the confidence.
    """
    total = _softmax(logits) + _softmax(mirrored[..., ::-1])
    return np.log(np.maximum(total * 0.5, np.float32(1e-30)), dtype=np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    peak = x.max(axis=0, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.exp(x - peak)
        if not np.isfinite(peak).all():  # inf - inf: the classes at the maximum count one
            e[x == peak] = 1
    return e / e.sum(axis=0, keepdims=True)


def label_dtype(num_classes: int) -> np.dtype:
    """uint8 up to 255 classes, uint16 beyond (the documented contract)."""
    if num_classes > 65535:
        raise ValueError(f"{num_classes} classes do not fit a uint16 label map")
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)


class FramePost:
    """One frame's post-processing; ``grid`` None means output at the network size.

    ``logits`` (C, h, w) float32 must stay untouched until the last output is taken;
    with ``labels`` (their argmax, known) they may be any ``upsample.LogitSource``.
    With a ``helper`` (a one-thread executor) independent work runs on a second core:
    half of the network-size argmax, the gather of uniform cells while mixed ones are
    interpolated here, and the bulk of the confidence while labels, colour and overlay
    are made here. Results do not depend on it.
    """

    def __init__(self, logits: np.ndarray | up.LogitSource, grid: up.CellGrid | None,
                 dtype: np.dtype, packed_palette: np.ndarray, want_confidence: bool = False,
                 helper: Executor | None = None, labels: np.ndarray | None = None):
        self.logits, self.grid = logits, grid
        if labels is not None:  # their argmax, already known (``lowres``): no confidence
            if want_confidence:
                raise ValueError("confidence needs the logits' maxima, not just labels")
            self.small, self.best = labels, None
        else:
            self.small, self.best = _split_rows(logits, dtype, helper)
        self.fixed: up.FixedCells | None = None
        self.rgb: np.ndarray | None = None  # the colour, when made with the labels (lowres)
        self._packed = packed_palette
        self._conf: Future | None = None
        gathered = None
        if grid is not None and helper is not None:  # queued first: labels wait for it
            gathered = helper.submit(up.gather, grid, self.small)
        if want_confidence and helper is not None:
            self._conf = helper.submit(self._confidence_bulk)
        if grid is None:
            self.labels = self.small
            return
        self.fixed = up.fix_mixed(grid, logits, up.mixed_cells(self.small), dtype,
                                  keep_values=want_confidence)
        self.labels = gathered.result() if gathered is not None else up.gather(grid, self.small)
        self.labels.reshape(-1)[self.fixed.index] = self.fixed.labels

    def colour(self, order: str, out: np.ndarray | None = None) -> np.ndarray:
        """HxWx3 uint8 palette colours of the labels, channels in ``order`` ("rgb"/"bgr").

        ``out``: where to write them when it can take them (``image_loops.usable``: uint8
        labels, contiguous, of their shape); else a new array, as OpenCV does with a ``dst``
        that does not fit (the engine copies it in or names the misfit).
        """
        out = image_loops.usable(out, (*self.labels.shape, 3), np.uint8)
        if self.rgb is not None and order == "rgb":
            if out is None or out is self.rgb:
                return self.rgb
            np.copyto(out, self.rgb)
            return out
        if self.labels.dtype != np.uint8:
            return up.unpack_colour(self.colour_packed(), order)
        # One pass from the labels to the three channels (OpenCV's colour map with our
        # palette as the map): a uint32 lookup then an unpack per order cost 2x as much.
        table = np.zeros((256, 4), np.uint8)
        table[: len(self._packed)] = self._packed.view(np.uint8).reshape(-1, 4)
        channels = table[:, :3] if order == "rgb" else table[:, 2::-1]
        return cv2.applyColorMap(self.labels, np.ascontiguousarray(channels[:, None]), out)

    def overlay(self, frame: np.ndarray, order: str, alpha: float,
                rgb: np.ndarray | None = None, out: np.ndarray | None = None,
                helper: Executor | None = None) -> np.ndarray:
        """Blend the colours over ``frame`` (channels in ``order``), into ``out`` if given.

        ``rgb``: this frame's RGB colour, when already made. With the compiled loops one
        colour map serves both: the blend reads it with red and blue swapped for a BGR
        frame (``image_loops.blend``), in bands shared with ``helper`` once it is free
        (``preprocess.share_rows``); else OpenCV's blend of a colour in ``order``.
        ``out`` as in :meth:`colour`.
        """
        out = image_loops.usable(out, frame.shape, np.uint8)
        if kernels.available():
            rgb = self.colour("rgb") if rgb is None else rgb
            if rgb.shape != frame.shape:  # (checked whole: the bands would name slices)
                raise ValueError(f"overlay: colour {rgb.shape} and frame {frame.shape} differ")
            out = np.empty(frame.shape, np.uint8) if out is None else out
            share_rows(helper, frame.shape[0], lambda rows: image_loops.blend(
                frame[rows], rgb[rows], alpha, order != "rgb", out[rows]))
            return out
        tint = rgb if order == "rgb" and rgb is not None else self.colour(order)
        return blend_cpu(frame, tint, alpha, out)

    def colour_packed(self) -> np.ndarray:
        """Return HxW uint32 palette entries (see ``upsample.pack_palette``)."""
        if self.labels.dtype == np.uint8:
            # One table lookup over the final labels: 2.4x faster than np.take at network
            # size, and at a camera's size faster than that plus the gather and the patch.
            table = np.zeros((256, 1), np.uint32)
            table[: len(self._packed), 0] = self._packed
            return cv2.LUT(self.labels, table.view(np.int32)).view(np.uint32)
        small = np.take(self._packed, self.small)
        if self.grid is None:
            return small
        packed = up.gather(self.grid, small)
        packed.reshape(-1)[self.fixed.index] = self._packed[self.fixed.labels]
        return packed

    def _confidence_bulk(self) -> tuple[np.ndarray, bool]:
        """Return the confidence and whether the logits looked finite (see ``_finite``)."""
        if self.grid is None:
            total = up.lowres_softmax_sum(self.logits, self.best)
            finite = _finite(total)
            return up.rounded(np.float32(255) / total), finite
        # S - 1 summed over the other classes: taken from S it cancels (upsample)
        doubt = up.lowres_doubt(self.logits, self.best, self.small)
        return (up.confidence_at_size(self.grid, doubt),
                _finite(doubt, self.best, self.logits[0]))

    def confidence(self) -> np.ndarray:
        """Return HxW uint8 round(255 * max softmax); 0 where the logits hold a NaN.

        Where they are infinite, the classes at the maximum share it (a lone +inf: 255).
        """
        conf, finite = self._conf.result() if self._conf is not None else \
            self._confidence_bulk()
        if self.grid is not None and self.fixed.index.size:
            if not self.fixed.values:
                raise ValueError("confidence needs FramePost(want_confidence=True)")
            exact = self.fixed.confidence_values()
            finite = finite and _finite(exact)
            conf.reshape(-1)[self.fixed.index] = up.rounded(exact)
        if not finite:  # rare (a broken model, an overflow): the slow exact values there
            fix_nonfinite(conf, self.logits, self.grid)
        return conf


def _split_rows(logits: np.ndarray, dtype: np.dtype, helper: Executor | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Network-size argmax and max; with a helper, its half of the rows on the other core."""
    labels = np.empty(logits.shape[1:], dtype)
    best = np.empty(logits.shape[1:], np.float32)
    by_rows(helper, logits.shape[1], lambda rows: up.argmax_classes(
        logits[:, rows], dtype, labels[rows], best[rows]))
    return labels, best


def _finite(*arrays: np.ndarray) -> bool:
    """Whether every array's maximum is finite: one cheap pass (NaN propagates through it).

    Network-size arrays that see every non-finite logit that matters: the softmax sums
    take exp(NaN - max) = NaN, and inf - inf = NaN at a +inf maximum. The doubt skips
    the winning class, so its checks add the max (an infinity) and plane 0 (the only
    class that can win while NaN: a NaN is never greater than the max). A -inf only
    matters where the mixed cells interpolate it, and their values are checked too.
    """
    with np.errstate(invalid="ignore"):
        return all(a.size == 0 or bool(np.isfinite(a.max())) for a in arrays)


def exact_confidence(values: np.ndarray) -> np.ndarray:
    """(C, n) logits -> (n,) uint8 round(255 * max softmax), defined for non-finite ones too.

    A NaN gives 0 (the softmax is undefined); the classes at the maximum count one each,
    so a lone +inf wins with 255, and k classes at +inf (all classes at -inf) get 255 / k.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        peak = values.max(axis=0)  # NaN wherever a value is NaN
        terms = np.exp(values - peak)  # NaN at the maximum when it is infinite ...
        terms[values == peak] = 1  # ... which counts one (a NaN never equals it)
        total = terms.sum(axis=0)
    conf = np.zeros(total.shape, np.uint8)
    ok = ~np.isnan(total)
    conf[ok] = np.rint(np.float32(255) / total[ok])
    return conf


def fix_nonfinite(conf: np.ndarray, logits: np.ndarray, *grids: up.CellGrid | None) -> None:
    """Recompute ``conf`` exactly wherever a non-finite logit reaches; no-op when none.

    ``grids`` are the bilinear steps from ``logits`` (C, h, w) to ``conf``'s size, in
    order (None: no step). The fast paths give finite nonsense there (a NaN reached the
    floor of the doubt and came out as 255); here every output pixel whose bilinear
    samples include such a logit, at any step, takes :func:`exact_confidence` of its
    interpolated logits. An interpolated value weighs infinities as limits: an
    infinity with a positive weight wins, +inf and -inf together are NaN.
    """
    bad = ~np.isfinite(logits).all(axis=0)
    if not bad.any():
        return
    nan = np.isnan(logits).any(axis=0)  # NaN wherever one has a positive weight: 0 at once

    planes = logits.reshape(logits.shape[0], -1)

    def sample(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.take(planes, rows * logits.shape[2] + cols, axis=1)

    for grid in (g for g in grids if g is not None):
        bad, nan = _reach(grid, bad), _reach(grid, nan, positive=True)
        sample = functools.partial(_interpolate, sample, grid)
    conf[nan] = 0
    where = np.flatnonzero(bad & ~nan)
    flat = conf.reshape(-1)
    for start in range(0, len(where), _EXACT_CHUNK):
        part = where[start:start + _EXACT_CHUNK]
        flat[part] = exact_confidence(sample(*np.divmod(part, bad.shape[1])))


# Output pixels :func:`fix_nonfinite` takes at a time (16 x C values each at two steps).
_EXACT_CHUNK = 1 << 14


def _taps(axis: Any, n_in: int, at: np.ndarray | slice = slice(None)
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the reference's two samples and the second's weight, per output index."""
    first = axis.src[at]
    return first, np.minimum(first + 1, n_in - 1), axis.lam[at]


def _reach(grid: up.CellGrid, bad: np.ndarray, positive: bool = False) -> np.ndarray:
    """Return the output pixels of ``grid`` with a ``bad`` sample among their four.

    ``positive``: among those of a positive weight (the first of each pair always has one).
    """
    y0, y1, wy = _taps(grid.y, grid.in_hw[0])
    x0, x1, wx = _taps(grid.x, grid.in_hw[1])
    rows = bad[y0] | (bad[y1] & (wy[:, None] > 0) if positive else bad[y1])
    return rows[:, x0] | (rows[:, x1] & (wx > 0) if positive else rows[:, x1])


def _interpolate(sample: Callable[[np.ndarray, np.ndarray], np.ndarray], grid: up.CellGrid,
                 rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(C, n) bilinear logits at output pixels (rows, cols) of ``grid``, from ``sample``."""
    y0, y1, wy = _taps(grid.y, grid.in_hw[0], rows)
    x0, x1, wx = _taps(grid.x, grid.in_hw[1], cols)
    top = _lerp(sample(y0, x0), sample(y0, x1), wx)
    return _lerp(top, _lerp(sample(y1, x0), sample(y1, x1), wx), wy)


def _lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(b - a) * w + a`` as the fast paths compute it; infinities as limits."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.subtract(b, a)
        out *= w
        out += a
        odd = ~np.isfinite(out)
        if odd.any():  # an infinity (or NaN) among a, b: weigh them apart, skip weight 0
            a, b, w = a[odd], b[odd], np.broadcast_to(w, out.shape)[odd]
            out[odd] = np.where(w == 0, a, (1 - w) * a + w * b)
    return out


def labels_cpu(logits: np.ndarray, out_hw: tuple[int, int], dtype: np.dtype,
               confidence: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and confidence) of (C, h, w) float32 logits at ``out_hw``: one-call form."""
    grid = None if tuple(out_hw) == logits.shape[1:] else up.CellGrid(logits.shape[1:], out_hw)
    palette = np.zeros(logits.shape[0], np.uint32)
    post = FramePost(logits, grid, dtype, palette, want_confidence=confidence)
    return post.labels, post.confidence() if confidence else None


def colorize_cpu(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 by palette lookup; ``palette`` is (C, 3) uint8."""
    return np.take(palette, labels, axis=0)


def blend_cpu(frame: np.ndarray, color: np.ndarray, alpha: float,
              out: np.ndarray | None = None) -> np.ndarray:
    """round((1 - alpha) * frame + alpha * color) as uint8, same shape as ``frame``.

    Into ``out`` when it can take it (``image_loops.usable``), else into a new array.
    """
    out = image_loops.usable(out, frame.shape, np.uint8)
    return cv2.addWeighted(frame, 1.0 - alpha, color, alpha, 0.0, out)

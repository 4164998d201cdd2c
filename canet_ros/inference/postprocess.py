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

from concurrent.futures import Executor, Future

import cv2
import numpy as np

from . import image_loops, kernels
from . import upsample as up
from .preprocess import by_rows, share_rows

__all__ = ["FramePost", "blend_cpu", "colorize_cpu", "flip_tta_logits", "label_dtype",
           "labels_cpu"]


def flip_tta_logits(logits: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """(C, h, w) logits of a frame and of its mirror image -> log of their mean softmax.

    The log keeps the rest of the path unchanged: argmax gives the averaged decision and
    softmax of it gives back the averaged probabilities for the confidence.
    """
    total = _softmax(logits) + _softmax(mirrored[..., ::-1])
    return np.log(np.maximum(total * 0.5, np.float32(1e-30)), dtype=np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
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

    def _confidence_bulk(self) -> np.ndarray:
        if self.grid is None:
            total = up.lowres_softmax_sum(self.logits, self.best)
            return np.rint(np.float32(255) / total).astype(np.uint8)
        # S - 1 summed over the other classes: taken from S it cancels (upsample)
        return up.confidence_at_size(self.grid, up.lowres_doubt(self.logits, self.best,
                                                                self.small))

    def confidence(self) -> np.ndarray:
        """Return HxW uint8 round(255 * max softmax)."""
        conf = self._conf.result() if self._conf is not None else self._confidence_bulk()
        if self.grid is not None and self.fixed.index.size:
            if not self.fixed.values:
                raise ValueError("confidence needs FramePost(want_confidence=True)")
            conf.reshape(-1)[self.fixed.index] = self.fixed.confidence()
        return conf


def _split_rows(logits: np.ndarray, dtype: np.dtype, helper: Executor | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Network-size argmax and max; with a helper, its half of the rows on the other core."""
    labels = np.empty(logits.shape[1:], dtype)
    best = np.empty(logits.shape[1:], np.float32)
    by_rows(helper, logits.shape[1], lambda rows: up.argmax_classes(
        logits[:, rows], dtype, labels[rows], best[rows]))
    return labels, best


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

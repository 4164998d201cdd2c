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

"""Compiled loops over whole images of the CPU frame path: the labels' gather, the blend.

* :func:`gather_rows`: each output pixel takes one given sample. An upsample repeats
  most output rows (2.3 of 1920x1200's rows per 1024x512 row, 8 per 1/8 row), so a
  repeated row is copied rather than gathered again: 1.5x faster than OpenCV's
  nearest-neighbour resize at 1920x1200, 4x at the network's 8x.
* :func:`blend`: the overlay, ``round((1 - alpha) * frame + alpha * colour)`` in
  float32 as OpenCV's ``addWeighted``, but reading the colour with its red and blue
  swapped when asked: a BGR camera's overlay comes from the RGB colour message, and the
  second colour map (in the frame's order) that it needed before is not made.

Run as plain Python without numba (``kernels``), for tests on tiny inputs.
"""
from __future__ import annotations

import numpy as np

from .kernels import loop

__all__ = ["blend", "gather_rows", "palette_table", "usable", "warm_up"]


def palette_table(packed: np.ndarray) -> np.ndarray:
    """(256, 3) uint8 RGB rows of ``upsample.pack_palette``'s entries (zeros past them)."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(packed)] = packed.view(np.uint8).reshape(-1, 4)[:256, :3]
    return table


def usable(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
           ) -> np.ndarray | None:
    """``out`` if it can take a result of ``shape`` and ``dtype`` (contiguous), else None.

    Callers that hand on a caller's buffer leave one that does not fit alone, as OpenCV
    does with its ``dst``; the engine then names the misfit (``results.place``).
    """
    if out is None or out.shape != tuple(shape) or out.dtype != dtype:
        return None
    return out if out.flags.c_contiguous else None


@loop
def _gather_rows(src, ys, xs, out, palette, colour):
    height, width = out.shape
    paint = colour.shape[0] > 0
    previous = -1
    for y in range(height):
        row, s = out[y], ys[y]
        if s == previous:
            above = out[y - 1]
            for x in range(width):
                row[x] = above[x]
            if paint:
                tint, tint_above = colour[y], colour[y - 1]
                for x in range(3 * width):
                    tint[x] = tint_above[x]
            continue
        previous = s
        source = src[s]
        for x in range(width):
            row[x] = source[xs[x]]
        if paint:
            tint = colour[y]
            for x in range(width):
                label = row[x]
                tint[3 * x] = palette[label, 0]
                tint[3 * x + 1] = palette[label, 1]
                tint[3 * x + 2] = palette[label, 2]


def gather_rows(src: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                out: np.ndarray | None = None, palette: np.ndarray | None = None,
                colour: np.ndarray | None = None) -> np.ndarray:
    """Return ``src[ys][:, xs]`` for 2-D ``src``, into ``out`` when given (contiguous).

    With ``palette`` ((256, 3) uint8) and ``colour`` (HxWx3 uint8, contiguous) of uint8
    ``src``, the gathered labels' colours go there in the same pass: repeated rows are
    copied with their colour, where OpenCV's colour map afterwards took a second pass
    over every pixel (1.5x the time of this one on one core).
    """
    if out is None:
        out = np.empty((len(ys), len(xs)), src.dtype)
    elif out.shape != (len(ys), len(xs)) or out.dtype != src.dtype:
        raise ValueError(f"out is {out.dtype} {out.shape}, the gather makes {src.dtype} "
                         f"{(len(ys), len(xs))}")
    if colour is None:
        palette, colour = np.zeros((0, 3), np.uint8), np.zeros((0, 0), np.uint8)
    else:
        _check_paint(src.dtype, palette, colour, out.shape)
        colour = colour.reshape(colour.shape[0], -1)
    _gather_rows(np.ascontiguousarray(src), ys, xs, out, palette, colour)
    return out


def _check_paint(dtype: np.dtype, palette: np.ndarray | None, colour: np.ndarray,
                 shape: tuple[int, int]) -> None:
    if dtype != np.uint8 or palette is None or palette.shape != (256, 3):
        raise ValueError("colours come with uint8 labels and a (256, 3) palette")
    if colour.shape != (*shape, 3) or colour.dtype != np.uint8 or not colour.flags.c_contiguous:
        raise ValueError(f"colour must be contiguous uint8 {(*shape, 3)}, got "
                         f"{colour.dtype} {colour.shape}")


@loop
def _blend(frame, colour, out, keep, add, swap):
    # Three statements a pixel (not a loop over channels), counted by pixel, and
    # offsets LLVM sees as constants once it splits the loop on ``swap``: then it
    # vectorises the interleaved bytes. A stepped range, or an offset passed in as a
    # number, made this loop 6-12x slower.
    half = np.float32(0.5)
    first = 2 if swap else 0
    last = 0 if swap else 2
    for p in range(frame.shape[0] // 3):
        i = 3 * p
        out[i] = np.uint8(np.float32(frame[i]) * keep + np.float32(colour[i + first]) * add
                          + half)
        out[i + 1] = np.uint8(np.float32(frame[i + 1]) * keep
                              + np.float32(colour[i + 1]) * add + half)
        out[i + 2] = np.uint8(np.float32(frame[i + 2]) * keep
                              + np.float32(colour[i + last]) * add + half)


@loop
def _blend_fixed(frame, colour, out, keep, add, swap):
    # As _blend for weights in 1/256ths, in 16-bit integers: exact (halves round up),
    # and twice as fast, as twice as many values fit a vector.
    half = np.uint16(128)
    first = 2 if swap else 0
    last = 0 if swap else 2
    for p in range(frame.shape[0] // 3):
        i = 3 * p
        out[i] = np.uint8((np.uint16(frame[i]) * keep + np.uint16(colour[i + first]) * add
                           + half) >> 8)
        out[i + 1] = np.uint8((np.uint16(frame[i + 1]) * keep
                               + np.uint16(colour[i + 1]) * add + half) >> 8)
        out[i + 2] = np.uint8((np.uint16(frame[i + 2]) * keep
                               + np.uint16(colour[i + last]) * add + half) >> 8)


def blend(frame: np.ndarray, colour: np.ndarray, alpha: float, swap: bool = False,
          out: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 uint8 ``round((1 - alpha) * frame + alpha * colour)``; ``swap``: colour's R<->B.

    As OpenCV's ``addWeighted`` the sum is float32: equal to the exact blend except at
    exact halves, which round up here (OpenCV: to even).
    """
    if frame.shape != colour.shape or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"blend takes two HxWx3 images of one size, got {frame.shape} "
                         f"and {colour.shape}")
    if out is None:
        out = np.empty(frame.shape, np.uint8)
    elif out.shape != frame.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be contiguous uint8 {frame.shape}, got {out.dtype} "
                         f"{out.shape}")
    args = (np.ascontiguousarray(frame, np.uint8).reshape(-1),
            np.ascontiguousarray(colour, np.uint8).reshape(-1), out.reshape(-1))
    steps = float(alpha) * 256
    if steps == int(steps):  # 0.5 (the default), 0.25, ...: exact in 16 bits
        add = np.uint16(steps)
        _blend_fixed(*args, np.uint16(256) - add, add, bool(swap))
    else:
        add = np.float32(alpha)
        _blend(*args, np.float32(1) - add, add, bool(swap))
    return out


def warm_up() -> None:
    """Compile (or load) both blends now: an alpha changed later must not stall a frame."""
    pixel = np.zeros((1, 1, 3), np.uint8)
    for alpha in (0.5, 0.3):  # 16-bit weights, float weights
        blend(pixel, pixel, alpha, swap=True)

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

"""The frame path in torch ops, for the CUDA pipeline: the CPU path's design on a device.

Everything stays on the device between upload and download, and nothing of the frame's
size is held in fp32: the frame is resized in fp16 (exact for 0..255) and rounded back
to bytes as on the CPU; labels come from the network-size argmax by a gather, and all
classes are interpolated only at the pixels of mixed cells (see ``upsample``), a chunk
of cells at a time; the confidence is spread in fp16; colour is a gather of the palette;
the overlay blends in fp16 (within 1 of the float32 blend). Shapes never depend on the
data: on a GPU the mixed cells are listed with ``nonzero_static`` at the count of all
cells, so no step waits for the host and every mixed cell is handled, however many.

The same functions run on CPU tensors, which is how the test suite checks them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .upsample import CellGrid

__all__ = ["DeviceGrid", "Mixed", "blend", "colour", "confidence", "flip_tta_logits",
           "labels", "lowres", "normalisation_affine", "preprocess"]

# Mixed cells interpolated at once, as a share of all cells (CamVid scenes have ~2 %, a
# busy one 10 %). A GPU lists every cell's place, so 1/MIXED_CHUNK chunks run each frame.
#
# Why not a fixed capacity with a fallback: knowing that a frame overflowed needs the
# count on the host, either by a sync here (the host would wait for the model on every
# frame, ending the overlap of CudaPipeline's streams) or by a check where the outputs
# are collected, followed by a recompute from a frame and logits that later frames may
# have overwritten by then (the pipeline's slots, a CUDA graph's static output). The
# chunks past the count are padding (a dummy cell whose slots all fall on a dropped
# pixel): that costs GPU time each frame but no sync, and the result is exact.
MIXED_CHUNK = 0.1
# Floor of the doubt S - 1 (see upsample): float32's smallest normal.
_TINY = float(np.finfo(np.float32).tiny)


def flip_tta_logits(logits: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) logits of a frame and of its mirror -> log of the mean softmax (fp32)."""
    total = logits.float().softmax(1) + mirrored.float().flip(-1).softmax(1)
    return total.mul_(0.5).clamp_min_(1e-30).log_()


def normalisation_affine(mean: Sequence[float], std: Sequence[float]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, bias), each (1, 3, 1, 1) float32 RGB, with ``x*scale + bias`` on 0..255 values."""
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * s)).float().view(1, 3, 1, 1)
    bias = (-m / s).float().view(1, 3, 1, 1)
    return scale, bias


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


def preprocess(frame: torch.Tensor, size: tuple[int, int], scale: torch.Tensor,
               bias: torch.Tensor, order: str, dtype: torch.dtype, channels_last: bool,
               work: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """HxWx3 uint8 on the device -> (1,3,h,w) network input and the frame at network size.

    A resize runs in ``work`` precision (fp16 on CUDA: 0..255 is exact, results within
    1/16 of a grey level) and is normalised unrounded, as the CPU path's 16-bit resize;
    the uint8 frame at network size (rounded) is only for overlays.
    """
    width, height = size
    x = frame.permute(2, 0, 1).unsqueeze(0)  # NHWC strides, i.e. channels_last
    small = frame
    if tuple(frame.shape[:2]) != (height, width):
        x = F.interpolate(x.to(work or _work_dtype(frame.device)), size=(height, width),
                          mode="bilinear", align_corners=False)
        small = x[0].round().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
    if order == "bgr":  # at network size: the cheapest place for it
        x = x.flip(1)
    # addcmul promotes to the affine's float32 (network size) and keeps the strides.
    x = torch.addcmul(bias, x, scale)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype=dtype, memory_format=fmt), small


def _slot_tables(axis: Any, n_in: int, slots: int, stride: int, place: int, dump: int,
                 dummy: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return one axis's tables for the mixed cells' slots (an ``upsample._Axis``).

    Per cell, in one int64 table: its two corner samples (times ``stride``) and where
    each slot's output index lands (times ``place``; ``dump`` for slots the cell lacks);
    then the slots' weights; and the cell of each output index. ``dummy`` adds a cell
    past the end with no slots: the padding of a static list.
    """
    n_out = len(axis.src)
    index = axis.start[:, None] + np.arange(slots)
    at = np.where(np.arange(slots) < axis.count[:, None], index * place, dump)
    table = np.hstack([np.stack([axis.lo, axis.hi], 1) * stride, at]).astype(np.int64)
    lam = axis.lam[np.minimum(index, n_out - 1)].astype(np.float32)
    if dummy:
        table = np.vstack([table, [0, 0] + [dump] * slots])
        lam = np.vstack([lam, np.zeros((1, slots), np.float32)])
    cell = np.repeat(np.arange(n_in + 1), axis.count)  # the cell of each output index
    return table, lam, cell


class DeviceGrid:
    """A :class:`CellGrid`'s tables as tensors on ``device``.

    ``capacity``: mixed cells interpolated per chunk; given (the default on a GPU:
    ``MIXED_CHUNK`` of the cells), the cells are listed without a sync at the count of
    all cells, so every frame runs all the chunks; without it (the CPU's default) the
    list is exact and the chunks as many as needed. ``work``: precision of the
    frame-sized spreading (default fp16 on a GPU). Tests set both on CPU tensors.
    """

    def __init__(self, grid: CellGrid, device: torch.device, capacity: int | None = None,
                 work: torch.dtype | None = None):
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        self.in_hw, self.out_hw, self.slots = grid.in_hw, grid.out_hw, grid.slots
        (h, w), (height, width) = grid.in_hw, grid.out_hw
        self.cells = (h + 1) * (w + 1)
        self.src_rows, self.src_cols = tensor(grid.y.src), tensor(grid.x.src)
        self.pad_rows = tensor(np.clip(np.arange(-1, h + 1), 0, h - 1))
        self.pad_cols = tensor(np.clip(np.arange(-1, w + 1), 0, w - 1))
        dump = height * width  # one past the last pixel: where absent slots are written
        y = _slot_tables(grid.y, h, self.slots[0], w, width, dump, dummy=True)
        x = _slot_tables(grid.x, w, self.slots[1], 1, 1, dump, dummy=False)
        self.y_table, self.y_lam, self.y_cell = (tensor(a) for a in y)
        self.x_table, self.x_lam, self.x_cell = (tensor(a) for a in x)
        self.chunk = max(1, math.ceil(self.cells * MIXED_CHUNK))
        if capacity is None and device.type != "cpu":
            capacity = self.chunk
        self.capacity = capacity
        self.chunk = capacity or self.chunk
        self.work = work or _work_dtype(device)


@dataclass
class Mixed:
    """What ``labels`` leaves for colour and confidence.

    The frame's labels, the exact confidence at the mixed cells' pixels (None if not
    asked for) and the (h+1, w+1) mask of the mixed cells.
    """

    labels: torch.Tensor
    exact: torch.Tensor | None
    cells: torch.Tensor


def lowres(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1,C,h,w) -> labels (h,w) int64 and maxima (h,w) in the logits' dtype; first max wins."""
    best, labels = logits[0].max(0)
    return labels, best


def _mixed_cells(grid: DeviceGrid, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of mixed cells (see ``upsample.mixed_cells``) and their (h+1, w+1) mask.

    With a capacity the list has a static length, a whole number of chunks covering every
    cell; past the count it holds ``grid.cells``, the dummy cell without slots.
    """
    padded = labels.index_select(0, grid.pad_rows).index_select(1, grid.pad_cols)
    corner = padded[:-1, :-1]
    mixed = (corner != padded[1:, :-1]) | (corner != padded[:-1, 1:]) | (corner != padded[1:, 1:])
    flat = mixed.reshape(-1)
    if grid.capacity is not None:
        size = math.ceil(grid.cells / grid.capacity) * grid.capacity
        try:
            return torch.nonzero_static(flat, size=size, fill_value=grid.cells).reshape(-1), mixed
        except (NotImplementedError, RuntimeError):  # torch < 2.6 has it on the CPU only
            grid.capacity = None
    return flat.nonzero().reshape(-1), mixed  # waits for the device: exact, but a sync


def _logit_table(logits: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Return (1,C,h,w) logits as a 2-D view and the dim along which a pixel is one index.

    A channels_last model's logits (the GPU's usual choice) are (h*w, C); contiguous
    ones (C, h*w). Either way no copy: at 1024x512 a copy would be 22 MiB of the frame's
    peak memory.
    """
    planes = logits[0]
    by_pixel = planes.permute(1, 2, 0)
    if by_pixel.is_contiguous():
        return by_pixel.reshape(-1, planes.shape[0]), 0
    return planes.reshape(planes.shape[0], -1), 1


def _slot_values(grid: DeviceGrid, table: tuple[torch.Tensor, int], cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """All classes interpolated at every slot of the listed cells: (C, n, S, K).

    Also the slots' pixel ids, flat in the same order: ``H*W`` (one past the end) for
    slots a cell does not have, including every slot of the dummy cell. ``table``:
    ``_logit_table``'s view. The values' memory order follows the logits' (class-major
    or pixel-major): flattening them could copy the chunk.
    """
    ci = torch.div(cells, grid.in_hw[1] + 1, rounding_mode="floor")
    cj = torch.remainder(cells, grid.in_hw[1] + 1)
    rows, cols = grid.y_table.index_select(0, ci), grid.x_table.index_select(0, cj)
    pixels = rows[:, 2:, None] + cols[:, None, 2:]
    pixels = pixels.clamp_(max=grid.out_hw[0] * grid.out_hw[1]).view(-1)
    logit_view, dim = table
    corners = logit_view.index_select(dim, (rows[:, :2, None] + cols[:, None, :2]).view(-1))
    del rows, cols
    corners = corners.t() if dim == 0 else corners  # (C, 4n), as strided as it came
    classes = corners.shape[0]
    corners = corners.float().reshape(classes, len(cells), 2, 2)  # views, no copies
    # As the CPU path: along x between the left and right corners, then along y.
    across = torch.lerp(corners[..., :1], corners[..., 1:],
                        grid.x_lam.index_select(0, cj)[:, None, :])
    del corners  # one chunk's intermediates at a time (the frame path's memory bound)
    values = torch.lerp(across[:, :, :1], across[:, :, 1:],
                        grid.y_lam.index_select(0, ci)[:, :, None])
    return values, pixels


def labels(grid: DeviceGrid | None, logits: torch.Tensor, dtype: torch.dtype = torch.int64,
           confidence: bool = True) -> tuple[torch.Tensor, torch.Tensor, Mixed | None]:
    """Labels (H, W) in ``dtype`` at the grid's output size (network size without a grid).

    Also returns the network-size labels (int64 without a grid, for ``colour``; in
    ``dtype`` with one) and, with a grid, a :class:`Mixed` for colour and confidence
    (whose exact values at mixed pixels are made here, in the same pass, if
    ``confidence``).
    """
    small = lowres(logits)[0]
    if grid is None:
        return small.to(dtype), small, None
    height, width = grid.out_hw
    narrow = small.to(dtype)  # nothing frame-sized in int64
    del small  # only the narrowed copy goes on (memory)
    # One element past the frame takes the writes of absent slots.
    flat_labels = torch.empty(height * width + 1, dtype=dtype, device=narrow.device)
    out = flat_labels[:-1].view(height, width)
    torch.index_select(narrow.index_select(0, grid.src_rows), 1, grid.src_cols, out=out)
    cells, mask = _mixed_cells(grid, narrow)
    exact = flat_labels.new_empty(height * width + 1, dtype=torch.uint8) if confidence else None
    table = _logit_table(logits)
    for chunk in cells.split(grid.chunk):
        values, pixels = _slot_values(grid, table, chunk)
        best, fixed = values.max(0)
        flat_labels.index_copy_(0, pixels, fixed.to(dtype).reshape(-1))
        if exact is not None:  # max softmax = 1 / sum(exp(values - max))
            sums = values.sub_(best).exp_().sum(0)
            exact.index_copy_(0, pixels, (255.0 / sums).round_().to(torch.uint8).reshape(-1))
        del values, best, fixed, pixels
    if exact is not None:
        exact = exact[:-1].view(height, width)
    return out, narrow, Mixed(out, exact, mask)


def confidence(grid: DeviceGrid | None, logits: torch.Tensor, mixed: Mixed | None
               ) -> torch.Tensor:
    """round(255 * max softmax) as uint8 (H, W); interpolated as in ``upsample``."""
    planes = logits[0]
    if grid is not None and mixed is not None and mixed.exact is None:
        raise ValueError("confidence needs labels(..., confidence=True)")
    if planes.dtype == torch.float32:
        best, top = planes.max(0, keepdim=True)
        shifted = planes - best
    else:  # fp16 logits: one fp32 copy, shifted in place (22 MiB at 1024x512, not 44)
        shifted = planes.float()
        best, top = shifted.max(0, keepdim=True)
        shifted -= best
    del best
    terms = shifted.exp_()
    if grid is None or mixed is None:
        return (255.0 / terms.sum(0)).round_().to(torch.uint8)
    # S - 1 without the top class's 1 (upsample.lowres_doubt): S - 1 in float32 is 0
    # past a gap of ~16.6, and its floor raised the spread confidence above the truth.
    doubt = terms.scatter_(0, top, 0.0).sum(0).clamp_(min=_TINY).log_()
    del shifted, terms, top
    spread = F.interpolate(doubt[None, None].to(grid.work), size=grid.out_hw, mode="bilinear",
                           align_corners=False)[0, 0]
    del doubt
    # In place: 255 / (1 + e) is torch's reciprocal times 255, the same bits.
    conf = spread.exp_().add_(1.0).reciprocal_().mul_(255.0).round_().to(torch.uint8)
    del spread
    at_mixed = mixed.cells.index_select(0, grid.y_cell).index_select(1, grid.x_cell)
    return torch.where(at_mixed, mixed.exact, conf)


def colour(grid: DeviceGrid | None, small: torch.Tensor, palette: torch.Tensor,
           mixed: Mixed | None) -> torch.Tensor:
    """Palette colours (H, W, 3) uint8: the palette gathered at the labels."""
    if grid is None or mixed is None:
        return palette[small]
    index = mixed.labels.reshape(-1)
    if index.dtype not in (torch.int32, torch.int64):  # index_select takes these only
        index = index.int()
    return palette.index_select(0, index).view(*mixed.labels.shape, 3)


def blend(frame: torch.Tensor, tint: torch.Tensor, alpha: float,
          work: torch.dtype | None = None) -> torch.Tensor:
    """round((1 - alpha) * frame + alpha * tint) as uint8 (fp16 on a GPU: within 1)."""
    work = work or _work_dtype(frame.device)
    mixed = frame.to(work, copy=True)  # in place below: never the caller's tensor
    mixed.lerp_(tint.to(work), alpha)
    return mixed.round_().clamp_(0, 255).to(torch.uint8)

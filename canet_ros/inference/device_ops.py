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
classes are interpolated only at the pixels of mixed cells (see ``upsample``); the
confidence is spread in fp16; colour is a gather of the palette; the overlay blends in
fp16 (within 1 of the float32 blend). Shapes never depend on the data: mixed cells are
listed with ``nonzero_static`` up to a fixed capacity, so no step waits for the host.

The same functions run on CPU tensors, which is how the test suite checks them.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .upsample import CellGrid

__all__ = ["DeviceGrid", "blend", "colour", "confidence", "flip_tta_logits", "labels",
           "lowres", "normalisation_affine", "preprocess"]

# Mixed cells handled per frame on a GPU, as a share of all cells. CamVid scenes have
# ~2 %; past the capacity (a noisy, untrained model) the rest keep the label of their
# top-left corner, as a nearest-neighbour upsampling would give them.
MIXED_CAPACITY = 0.125


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


class DeviceGrid:
    """A :class:`CellGrid`'s tables as tensors on ``device``.

    ``capacity``: mixed cells handled per frame (default: all on the CPU, where listing
    them needs no sync; ``MIXED_CAPACITY`` of the cells on a GPU). ``work``: precision of
    the frame-sized spreading (default fp16 on a GPU). Tests set both on CPU tensors.
    """

    def __init__(self, grid: CellGrid, device: torch.device, capacity: int | None = None,
                 work: torch.dtype | None = None):
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        self.in_hw, self.out_hw, self.slots = grid.in_hw, grid.out_hw, grid.slots
        self.y = {k: tensor(getattr(grid.y, k)) for k in ("src", "lam", "start", "count",
                                                          "lo", "hi")}
        self.x = {k: tensor(getattr(grid.x, k)) for k in ("src", "lam", "start", "count",
                                                          "lo", "hi")}
        h, w = grid.in_hw
        self.pad_rows = tensor(np.clip(np.arange(-1, h + 1), 0, h - 1))
        self.pad_cols = tensor(np.clip(np.arange(-1, w + 1), 0, w - 1))
        if capacity is None and device.type != "cpu":
            capacity = max(1, int((h + 1) * (w + 1) * MIXED_CAPACITY))
        self.capacity = capacity
        self.work = work or _work_dtype(device)


def lowres(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1,C,h,w) -> labels (h,w) int64 and maxima (h,w) in the logits' dtype; first max wins."""
    best, labels = logits[0].max(0)
    return labels, best


def _gather(grid: DeviceGrid, lowres_map: torch.Tensor) -> torch.Tensor:
    rows = lowres_map.index_select(0, grid.y["src"])
    return rows.index_select(1, grid.x["src"])


def _mixed_cells(grid: DeviceGrid, labels: torch.Tensor) -> torch.Tensor:
    """Flat indices of mixed cells (see ``upsample.mixed_cells``), -1 past the count."""
    padded = labels.index_select(0, grid.pad_rows).index_select(1, grid.pad_cols)
    corner = padded[:-1, :-1]
    mixed = (corner != padded[1:, :-1]) | (corner != padded[:-1, 1:]) | (corner != padded[1:, 1:])
    flat = mixed.reshape(-1)
    if grid.capacity is not None:
        try:
            return torch.nonzero_static(flat, size=grid.capacity, fill_value=-1).reshape(-1)
        except (NotImplementedError, RuntimeError):  # torch < 2.6 has it on the CPU only
            grid.capacity = None
    return flat.nonzero().reshape(-1)  # waits for the device: exact, but a sync


def _slot_values(grid: DeviceGrid, logits: torch.Tensor, cells: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """All classes interpolated at every slot of every listed cell: (C, S*K) and pixel ids.

    Pixel ids are ``H*W`` (one past the end) for slots a cell does not have and for
    padding entries of ``cells``.
    """
    w, (height, width) = grid.in_hw[1], grid.out_hw
    ay, ax = grid.y, grid.x
    present = cells >= 0
    cells = cells.clamp(min=0)
    ci, cj = cells // (w + 1), cells % (w + 1)
    flat = logits[0].reshape(logits.shape[1], -1)
    r0, r1 = ay["lo"][ci] * w, ay["hi"][ci] * w
    c0, c1 = ax["lo"][cj], ax["hi"][cj]
    v00, v01, v10, v11 = (flat.index_select(1, i).float()
                          for i in (r0 + c0, r0 + c1, r1 + c0, r1 + c1))
    sy, sx = grid.slots
    values, pixels = [], []
    for q in range(sx):
        xq = ax["start"][cj] + q
        lx = ax["lam"][xq.clamp(max=width - 1)]
        top = torch.lerp(v00, v01, lx)
        bottom = torch.lerp(v10, v11, lx)
        for p in range(sy):
            yp = ay["start"][ci] + p
            ly = ay["lam"][yp.clamp(max=height - 1)]
            values.append(torch.lerp(top, bottom, ly))
            ok = present & (p < ay["count"][ci]) & (q < ax["count"][cj])
            pixels.append(torch.where(ok, yp * width + xq, height * width))
    return torch.cat(values, 1), torch.cat(pixels)


def _patch(full: torch.Tensor, pixels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``full`` (H, W, ...) with ``values`` written at flat ``pixels``; index H*W is dropped."""
    height, width = full.shape[:2]
    flat = torch.cat([full.reshape(height * width, *full.shape[2:]),
                      full.new_zeros((1, *full.shape[2:]))])
    flat.index_copy_(0, pixels, values.to(full.dtype))
    return flat[:-1].reshape(full.shape)


Mixed = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # values (C, n), pixel ids, labels


def labels(grid: DeviceGrid | None, logits: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, Mixed | None]:
    """Labels (H, W) int64 at the grid's output size (network size without a grid).

    Also returns the network-size labels and the mixed cells' values, pixel ids and
    labels, which colour and confidence reuse.
    """
    small, _ = lowres(logits)
    if grid is None:
        return small, small, None
    values, pixels = _slot_values(grid, logits, _mixed_cells(grid, small))
    fixed = values.argmax(0)
    return _patch(_gather(grid, small), pixels, fixed), small, (values, pixels, fixed)


def confidence(grid: DeviceGrid | None, logits: torch.Tensor, mixed: Mixed | None
               ) -> torch.Tensor:
    """round(255 * max softmax) as uint8 (H, W); interpolated as in ``upsample``."""
    small = logits[0].float()
    total = (small - small.amax(0, keepdim=True)).exp_().sum(0)
    if grid is None or mixed is None:
        return (255.0 / total).round_().to(torch.uint8)
    doubt = (total - 1.0).clamp_(min=1e-30).log_()
    spread = F.interpolate(doubt[None, None].to(grid.work), size=grid.out_hw, mode="bilinear",
                           align_corners=False)[0, 0]
    conf = (255.0 / (1.0 + spread.exp_())).round_().to(torch.uint8)
    values, pixels, _ = mixed
    exact = (values - values.amax(0, keepdim=True)).exp_().sum(0)
    return _patch(conf, pixels, (255.0 / exact).round_())


def colour(grid: DeviceGrid | None, small: torch.Tensor, palette: torch.Tensor,
           mixed: Mixed | None) -> torch.Tensor:
    """Palette colours (H, W, 3) uint8: a gather of the network-size colours, patched."""
    colours = palette[small]
    if grid is None or mixed is None:
        return colours
    _, pixels, fixed = mixed
    return _patch(_gather(grid, colours), pixels, palette[fixed])


def blend(frame: torch.Tensor, tint: torch.Tensor, alpha: float,
          work: torch.dtype | None = None) -> torch.Tensor:
    """round((1 - alpha) * frame + alpha * tint) as uint8 (fp16 on a GPU: within 1)."""
    work = work or _work_dtype(frame.device)
    mixed = torch.lerp(frame.to(work), tint.to(work), alpha)
    return mixed.round_().clamp_(0, 255).to(torch.uint8)

"""Frame -> normalised network input, on the CPU (numpy/OpenCV) and on a torch device.

Both paths compute what the reference does -- bilinear resize (align_corners=False,
no antialiasing) to the network size, ``(x / 255 - mean) / std``, NCHW in RGB order --
up to float rounding. Normalisation is affine per channel and bilinear weights sum
to one, so normalising before resizing (the CPU path) gives the same values.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.nn import functional as F

__all__ = [
    "DEFAULT_RESOLUTION", "MAX_SIDE", "MIN_SIDE", "check_frame", "normalisation_lut",
    "normalisation_affine", "parse_resolution", "preprocess_cpu", "preprocess_torch",
]

# Used when neither the caller nor the checkpoint names a network input size.
DEFAULT_RESOLUTION = (1024, 512)
# Below 32 px the 1/32 context stage is under one pixel; above 16384 is surely a typo.
MIN_SIDE = 32
MAX_SIDE = 16384
_RES_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_resolution(value: tuple[int, int] | Sequence[int] | str) -> tuple[int, int]:
    """``(W, H)`` or ``"WxH"`` -> ``(W, H)``; raises ValueError for anything else."""
    if isinstance(value, str):
        match = _RES_PATTERN.match(value)
        if not match:
            raise ValueError(f"resolution {value!r} is not of the form WIDTHxHEIGHT, e.g. 1024x512")
        width, height = int(match.group(1)), int(match.group(2))
    else:
        try:
            width, height = value
        except (TypeError, ValueError):
            raise ValueError(f"resolution {value!r} must be (width, height) or 'WxH'") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   for v in (width, height)):
            raise ValueError(f"resolution {value!r} must hold two integers")
        width, height = int(width), int(height)
    for name, side in (("width", width), ("height", height)):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"resolution {width}x{height}: {name} must be in "
                             f"[{MIN_SIDE}, {MAX_SIDE}]")
    return width, height


def check_frame(frame: object) -> np.ndarray:
    """Return the frame itself if it is HxWx3 uint8; raise ValueError otherwise."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be HxWx3 uint8, got {frame.shape} {frame.dtype}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty: {frame.shape}")
    return frame


def normalisation_lut(mean: Sequence[float], std: Sequence[float], order: str) -> np.ndarray:
    """(256, 1, 3) float32 table: byte value -> normalised value, per channel of ``order``.

    Computed with the same float32 ops as the reference so that, when no resize is
    needed, the network input is bit-identical to it.
    """
    values = torch.arange(256, dtype=torch.float32)[:, None] / 255
    table = (values - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(
        std, dtype=torch.float32)
    if order == "bgr":
        table = table.flip(1)
    return np.ascontiguousarray(table.numpy()[:, None, :])


def normalisation_affine(mean: Sequence[float], std: Sequence[float]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, bias), each (1, 3, 1, 1) float32 RGB, with ``x*scale + bias`` on 0..255 values."""
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * s)).float().view(1, 3, 1, 1)
    bias = (-m / s).float().view(1, 3, 1, 1)
    return scale, bias


def preprocess_cpu(frame: np.ndarray, size: tuple[int, int], lut: np.ndarray, order: str,
                   out: np.ndarray) -> np.ndarray:
    """Normalise (one LUT pass), resize if needed, write NCHW RGB into ``out`` (1,3,H,W)."""
    width, height = size
    normed = cv2.LUT(np.ascontiguousarray(frame), lut)
    if normed.shape[:2] != (height, width):
        normed = cv2.resize(normed, (width, height), interpolation=cv2.INTER_LINEAR)
    planes = normed[:, :, ::-1] if order == "bgr" else normed
    # One strided copy does the HWC -> CHW transpose and the channel reorder together.
    np.copyto(out[0], planes.transpose(2, 0, 1))
    return out


def resize_frame_cpu(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the uint8 frame at ``size`` (W, H), bilinear, for overlays at network size."""
    if frame.shape[:2] == (size[1], size[0]):
        return frame
    return cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_LINEAR)


def preprocess_torch(frame: torch.Tensor, size: tuple[int, int], scale: torch.Tensor,
                     bias: torch.Tensor, order: str, dtype: torch.dtype,
                     channels_last: bool, keep_resized: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """HxWx3 uint8 device tensor -> (1,3,h,w) network input, and the resized frame.

    The resized frame (HxWx3 float, 0..255, input order) is only returned when
    ``keep_resized`` and a resize happened; overlays at network size blend onto it.
    """
    width, height = size
    if order == "bgr":
        # Reordering bytes is the cheapest place for it: 3 bytes per pixel vs 12 or 6.
        frame = frame.flip(-1)
    x = frame.permute(2, 0, 1).unsqueeze(0)  # NHWC strides, i.e. channels_last
    resized = None
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x.float(), size=(height, width), mode="bilinear", align_corners=False)
        if keep_resized:
            resized = x[0].permute(1, 2, 0)
            if order == "bgr":
                resized = resized.flip(-1)
    # addcmul promotes uint8 to the affine's dtype and keeps the input's strides.
    x = torch.addcmul(bias, x, scale)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype=dtype, memory_format=fmt), resized

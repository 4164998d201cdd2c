"""Logits -> labels, colour mask, overlay and confidence; CPU (numpy/OpenCV) and torch.

Semantics, identical on both paths up to float rounding: logits at network size are
upsampled bilinearly (align_corners=False) to the output size, then

* labels     = argmax over classes (the first maximum wins on exact ties);
* color      = palette[labels] (RGB);
* overlay    = round((1 - alpha) * frame + alpha * palette_in_frame_order[labels]),
               computed in float32 and rounded to nearest (an exact .5 may go either
               way: OpenCV on the CPU and torch on a GPU fuse the multiply-adds
               differently);
* confidence = round(255 * max softmax).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn import functional as F

__all__ = [
    "blend_cpu", "blend_torch", "colorize_cpu", "colorize_torch", "confidence_torch",
    "label_dtype", "labels_cpu", "upsample_logits_torch",
]


def label_dtype(num_classes: int) -> np.dtype:
    """uint8 up to 255 classes, uint16 beyond (the documented contract)."""
    if num_classes > 65535:
        raise ValueError(f"{num_classes} classes do not fit a uint16 label map")
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)


def labels_cpu(logits: np.ndarray, out_hw: tuple[int, int], dtype: np.dtype,
               confidence: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Upsample + argmax (+ max softmax) of (C, h, w) float32 logits, one class at a time.

    Streaming over classes keeps memory at a few HxW planes whatever the class count,
    and OpenCV's compare/max/masked copy are several times faster than numpy's argmax
    over a leading axis. Strict ">" keeps the first maximum, as torch.argmax does.
    """
    height, width = out_hw
    resize = logits.shape[1:] != (height, width)

    def plane(c: int) -> np.ndarray:
        p = logits[c]
        return cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) if resize else p

    best = np.array(plane(0), dtype=np.float32, copy=True)
    labels = np.zeros((height, width), dtype=dtype)
    fill = np.empty_like(labels)
    total = np.ones((height, width), np.float32) if confidence else None
    for c in range(1, logits.shape[0]):
        p = plane(c)
        greater = cv2.compare(p, best, cv2.CMP_GT)
        fill.fill(c)
        cv2.copyTo(fill, greater, labels)
        if total is not None:
            # Online softmax: rescale the running sum whenever the maximum moves.
            new_best = cv2.max(best, p)
            total *= np.exp(best - new_best)
            total += np.exp(p - new_best)
            best = new_best
        else:
            cv2.max(best, p, dst=best)
    conf = None
    if total is not None:
        conf = np.rint(np.float32(255) / total).astype(np.uint8)
    return labels, conf


def colorize_cpu(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 by palette lookup; ``palette`` is (C, 3) uint8."""
    return np.take(palette, labels, axis=0)


def blend_cpu(frame: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """round((1 - alpha) * frame + alpha * color) as uint8, same shape as ``frame``."""
    return cv2.addWeighted(np.ascontiguousarray(frame), 1.0 - alpha, color, alpha, 0.0)


def upsample_logits_torch(logits: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """(1, C, h, w) -> (1, C, H, W), bilinear, align_corners=False; no-op at the same size."""
    if tuple(logits.shape[-2:]) == tuple(out_hw):
        return logits
    return F.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)


def colorize_torch(labels: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Map HxW int64 labels, (C, 3) uint8 palette on the same device -> HxWx3 uint8."""
    return palette[labels]


def blend_torch(frame: torch.Tensor, color: torch.Tensor, alpha: float) -> torch.Tensor:
    """Device version of :func:`blend_cpu`; ``frame`` may be uint8 or 0..255 float."""
    mixed = frame.float() * (1.0 - alpha) + color.float() * alpha
    return mixed.round_().clamp_(0, 255).to(torch.uint8)


def confidence_torch(logits: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) logits -> HxW uint8 round(255 * max softmax), in float32."""
    logits = logits[0].float()
    peak = logits.amax(0, keepdim=True)
    total = (logits - peak).exp_().sum(0)
    return (255.0 / total).round_().to(torch.uint8)

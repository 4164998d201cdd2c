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

"""Paired image/label transforms.

Frames are HxWx3 uint8 RGB numpy arrays, labels HxW integer arrays. Random draws come
from torch's global generator: the DataLoader seeds each worker from it, so one saved
torch RNG state reproduces the augmentation stream exactly on resume.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

Size = Tuple[int, int]  # (width, height), the OpenCV convention


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 HxWx3 RGB -> float CHW tensor, scaled to [0, 1] then standardised per channel."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return x.sub_(m).div_(s)


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Inverse of ``normalize`` for one CHW tensor -> uint8 HxWx3 RGB (for visualisation)."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    img = (x.detach().float().cpu() * s + m).clamp_(0, 1).mul_(255).round_().byte()
    return img.permute(1, 2, 0).numpy()


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def _randint(high: int) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, ()))


def random_crop(image: np.ndarray, label: np.ndarray, size: Size, ignore_index: int
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Crop (width, height); pads first where the input is smaller.

    Padded label pixels get the ignore index so they neither train nor score; padded
    image pixels are 0 before normalisation, i.e. black.
    """
    cw, ch = size
    h, w = label.shape
    pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                   value=int(ignore_index))
        h, w = label.shape
    y, x = _randint(h - ch), _randint(w - cw)
    return image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as OpenCV's gray


def photometric_jitter(image: np.ndarray, strength: float) -> np.ndarray:
    """Random gamma, brightness, saturation and contrast on a uint8 RGB frame.

    Factors are drawn from [1 - s, 1 + s] (gamma from [e^-s, e^s]) in that fixed order,
    so the draw count is constant and resume stays exact. Labels are unaffected: this
    only teaches the network other exposures and lighting (dusk, overcast, auto-exposure).
    """
    s = float(strength)
    gamma = math.exp(_uniform(-s, s))
    brightness, saturation, contrast = (_uniform(1 - s, 1 + s) for _ in range(3))
    lut = np.power(np.arange(256, dtype=np.float32) / 255.0, gamma) * brightness
    x = lut[image]
    gray = x @ _LUMA
    x = gray[..., None] + saturation * (x - gray[..., None])
    mean = float(gray.mean())
    x = mean + contrast * (x - mean)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def random_rotate(image: np.ndarray, label: np.ndarray, max_degrees: float, ignore_index: int
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre by an angle from [-max, max] degrees (camera roll).

    One draw whatever the outcome, so the RNG stream (and resume) stays exact. Uncovered
    corners are black in the frame and ``ignore_index`` in the label.
    """
    angle = _uniform(-max_degrees, max_degrees)
    h, w = label.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    # warpAffine rounds to the nearest source pixel on the frame's grid (unlike resize's
    # INTER_NEAREST), so the label stays aligned; it does not take INTER_NEAREST_EXACT.
    label = cv2.warpAffine(label, m, (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=int(ignore_index))
    return image, label


def random_blur(image: np.ndarray, probability: float) -> np.ndarray:
    """Gaussian blur (sigma 0.3-1.5 px) with the given probability; always two draws."""
    apply = float(torch.rand(())) < probability
    sigma = _uniform(0.3, 1.5)
    if not apply:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)


class TrainTransform:
    """Training-time augmentation and normalisation.

    Resize to ``base_size`` (optional), random scale, random horizontal flip, random
    rotation (optional), random crop, photometric jitter (optional), blur (optional),
    normalise. Returns (image tensor CHW float,
    label tensor HW int64).
    """

    def __init__(self, crop_size: Size, mean: Sequence[float], std: Sequence[float], *,
                 ignore_index: int, scale_range: Tuple[float, float] = (0.5, 2.0),
                 flip: bool = True, base_size: Optional[Size] = None,
                 photometric: float = 0.0, rotate: float = 0.0, blur: float = 0.0):
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)
        self.ignore_index = int(ignore_index)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip = flip
        self.base_size = tuple(base_size) if base_size else None
        self.photometric = float(photometric)
        self.rotate = float(rotate)
        self.blur = float(blur)

    def __call__(self, image: np.ndarray, label: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
        h, w = label.shape
        bw, bh = self.base_size or (w, h)
        s = _uniform(*self.scale_range)
        nw, nh = max(1, round(bw * s)), max(1, round(bh * s))
        if (nw, nh) != (w, h):
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            # Nearest keeps labels as valid ids; interpolating ids would invent classes.
            # NEAREST_EXACT samples at pixel centres, the grid INTER_LINEAR uses for the
            # frame; plain INTER_NEAREST is half a pixel off it and shifts labels at edges.
            label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST_EXACT)
        if self.flip and float(torch.rand(())) < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        if self.rotate > 0:
            image, label = random_rotate(np.ascontiguousarray(image),
                                         np.ascontiguousarray(label), self.rotate,
                                         self.ignore_index)
        image, label = random_crop(image, label, self.crop_size, self.ignore_index)
        if self.photometric > 0:
            image = photometric_jitter(image, self.photometric)
        if self.blur > 0:
            image = random_blur(np.ascontiguousarray(image), self.blur)
        target = torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))
        return normalize(image, self.mean, self.std), target


class EvalTransform:
    """Deterministic: resize the frame to the network ``size`` (if given) and normalise.

    The label is left at its full size: metrics compare at ground-truth resolution.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: Optional[Size] = None):
        self.mean, self.std = tuple(mean), tuple(std)
        self.size = (int(size[0]), int(size[1])) if size else None

    def __call__(self, image: np.ndarray, label: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.size and (image.shape[1], image.shape[0]) != self.size:
            # In float, as the engine's reference: rounding the resized frame to whole grey
            # levels would score the same checkpoint differently on the two evaluate paths.
            image = cv2.resize(image.astype(np.float32), self.size,
                               interpolation=cv2.INTER_LINEAR)
        target = torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))
        return normalize(image, self.mean, self.std), target

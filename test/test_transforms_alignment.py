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

"""Training augmentation keeps every label pixel on the frame pixel it describes.

The frame is blocks of pure colours, one per class, so a pixel's class can be read back
from its colour wherever the bilinear resize left it pure (not a blend at a block edge).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from canet_ros.data.transforms import TrainTransform

COLOURS = np.array([(200, 30, 30), (30, 200, 30), (30, 30, 200)], np.int32)


def _blocks(width: int = 97, height: int = 71) -> tuple:
    """Return a frame of odd-sized pure-colour blocks and its label (class = colour)."""
    col = np.repeat(np.arange(20), [7, 9, 11, 5, 13, 3, 9, 7, 5, 11] * 2)[:width]
    row = np.repeat(np.arange(21), [5, 9, 7, 11, 3, 13, 7] * 3)[:height]
    label = ((row[:, None] + 2 * col[None, :]) % 3).astype(np.uint8)
    return COLOURS[label].astype(np.uint8), label


def _mislabelled_pure_pixels(scale: float, **options) -> tuple:
    image, label = _blocks()
    h, w = label.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Crop = the whole scaled frame, no flip: the output is the resize alone (plus options).
    t = TrainTransform(size, (0, 0, 0), (1, 1, 1), ignore_index=255,
                       scale_range=(scale, scale), flip=False, **options)
    x, y = t(image, label)
    rgb = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.int32)
    dist = np.abs(rgb[..., None, :] - COLOURS[None, None]).sum(-1)
    pure = (dist.min(-1) <= 3) & (y.numpy() != 255)
    return int(((dist.argmin(-1) != y.numpy()) & pure).sum()), int(pure.sum())


@pytest.mark.parametrize("scale", [0.51, 0.59, 0.87, 1.37])
def test_scaled_label_stays_on_its_frame_pixels(scale):
    wrong, pure = _mislabelled_pure_pixels(scale)
    assert pure > 1000  # the check has pixels to look at
    assert wrong == 0, f"{wrong} of {pure} pure-colour pixels carry another class's label"


def test_rotated_label_stays_on_its_frame_pixels():
    torch.manual_seed(0)
    for _ in range(5):
        wrong, pure = _mislabelled_pure_pixels(1.0, rotate=20.0)
        assert pure > 1000 and wrong == 0


def test_evaluation_resizes_the_frame_in_float_as_the_engine_does():
    # The engine's reference: bilinear in float (align_corners=False, no antialias), then
    # normalised. Rounding the resized frame to whole grey levels made evaluate's torch
    # path (multi-scale TTA, --prior-correction) score differently from its engine path.
    from torch.nn import functional as F

    from canet_ros.data.transforms import EvalTransform

    frame = np.random.default_rng(0).integers(0, 256, (71, 97, 3), dtype=np.uint8)
    mean, std = (0.4, 0.45, 0.5), (0.2, 0.25, 0.3)
    x, _ = EvalTransform(mean, std, (40, 30))(frame, np.zeros((71, 97), np.uint8))
    ref = F.interpolate(torch.from_numpy(frame).permute(2, 0, 1)[None].double(), size=(30, 40),
                        mode="bilinear", align_corners=False)[0] / 255.0
    ref = (ref - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert x.shape == (3, 30, 40)
    assert torch.allclose(x.double(), ref, atol=1e-4)

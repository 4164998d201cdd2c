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

"""Confidence from NaN or infinite 1/8 logits (OpenVINO's path) as from whole logits.

NaN -> 0, a lone +inf -> 255, at the network's size and a frame's, with no warning
(test_confidence_nonfinite.py holds the same for whole logits). 8x upsampling: output
index i samples (i + 0.5) / 8 - 0.5, so 1/8 sample 2 reaches outputs 12..27 with a
positive weight (16 of them).
"""
import warnings

import cv2
import numpy as np
import pytest

from canet_ros.inference import lowres
from canet_ros.inference import upsample as up

C, LOW = 4, (5, 6)
NET = (8 * LOW[0], 8 * LOW[1])


def confidence(low, frame_hw):
    frame = None if frame_hw == NET else up.CellGrid(NET, frame_hw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return lowres.frame_post_from_lowres(low, up.CellGrid(LOW, NET), frame, np.uint8,
                                             np.zeros(C, np.uint32),
                                             want_confidence=True).confidence()


def blobby(seed=0):
    coarse = np.random.default_rng(seed).normal(0, 3, (C, 2, 3)).astype(np.float32)
    return np.stack([cv2.resize(p, LOW[::-1], interpolation=cv2.INTER_LINEAR) for p in coarse])


@pytest.fixture(autouse=True)
def compiled():
    from canet_ros.inference import kernels

    if not kernels.available():
        pytest.skip("the confidence from the 1/8 logits needs numba")


@pytest.mark.parametrize("frame_hw", [NET, (57, 70)], ids=["network", "frame"])
@pytest.mark.parametrize("planes, value, expected", [
    ([2], np.nan, 0), ([0], np.nan, 0), ([1], np.inf, 255), ([0, 1, 2, 3], -np.inf, 64)],
    ids=["nan-plane", "nan-plane-0", "inf-plane", "all-minus-inf"])
def test_whole_planes(frame_hw, planes, value, expected):
    low = blobby()
    low[planes] = value
    assert (confidence(low, frame_hw) == expected).all()


@pytest.mark.parametrize("value, expected", [(np.nan, 0), (np.inf, 255)], ids=["nan", "inf"])
def test_one_sample_reaches_its_own_outputs_only(value, expected):
    finite = blobby(1)
    low = finite.copy()
    low[1, 2, 3] = value
    conf = confidence(low, NET)
    block = np.zeros(NET, bool)
    block[12:28, 20:36] = True  # rows 12..27, columns 20..35: a positive weight on (2, 3)
    assert (conf[block] == expected).all()
    np.testing.assert_array_equal(conf[~block], confidence(finite, NET)[~block])

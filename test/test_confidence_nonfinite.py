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

"""Confidence of NaN and infinite logits: the same at the network's size and any other.

NaN -> 0 (no softmax); the classes at the maximum share it, so a lone +inf -> 255; no
RuntimeWarning. Expectations are worked out by hand (2x upsampling: output index i
samples i / 2 - 0.25, so sample 2 reaches outputs 3..6 with a positive weight).
"""
import math
import warnings

import cv2
import numpy as np
import pytest

from canet_ros.inference import softmax_loops
from canet_ros.inference import upsample as up
from canet_ros.inference.postprocess import exact_confidence, labels_cpu

C, H, W = 4, 6, 8
NET, DOUBLE, ODD = (H, W), (2 * H, 2 * W), (H + 5, W + 3)


def smooth(seed=0):
    """Finite logits with regions and boundaries, as a network's."""
    coarse = np.random.default_rng(seed).normal(0, 3, (C, 2, 3)).astype(np.float32)
    return np.stack([cv2.resize(p, (W, H), interpolation=cv2.INTER_LINEAR) for p in coarse])


def confidence(logits, out_hw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning (a NaN cast) fails the test
        return labels_cpu(logits, out_hw, np.dtype(np.uint8), confidence=True)[1]


def test_exact_confidence_by_hand():
    inf, nan = np.inf, np.nan
    columns = {  # logits of one pixel -> round(255 * max softmax)
        (0, 0, 0, 0): 64,               # 255 / 4 = 63.75
        (inf, 0, 1, 2): 255,            # a lone +inf wins outright
        (inf, inf, 0, 0): 128,          # two at +inf share it: 127.5 rounds to even
        (-inf, -inf, -inf, -inf): 64,   # all at the maximum, as a 4-way tie
        (1, -inf, -inf, -inf): 255,
        (math.log(3), 0, -inf, -inf): 191,  # 3 / 4 of 255 = 191.25
        (nan, 5, 0, 0): 0,
        (inf, nan, 0, 0): 0,
    }
    values = np.array(list(columns), np.float32).T
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = exact_confidence(values)
    assert got.tolist() == list(columns.values())


@pytest.mark.parametrize("out_hw", [NET, DOUBLE, ODD], ids=["network", "2x", "odd"])
@pytest.mark.parametrize("planes, value, expected", [
    ([2], np.nan, 0),
    ([0], np.nan, 0),               # class 0: the one a NaN can stay the label of
    ([2], np.inf, 255),
    ([1, 3], np.inf, 128),
    ([0, 1, 2, 3], -np.inf, 64),
], ids=["nan-plane", "nan-plane-0", "inf-plane", "two-inf-planes", "all-minus-inf"])
def test_whole_planes_give_the_same_confidence_at_every_size(out_hw, planes, value, expected):
    logits = smooth()
    logits[planes] = value
    assert (confidence(logits, out_hw) == expected).all()


def reference(logits):
    """round(255 * max softmax) of finite logits in float64 (network size)."""
    x = logits.astype(np.float64)
    e = np.exp(x - x.max(0))
    return np.rint(255 * e.max(0) / e.sum(0))


@pytest.mark.parametrize("value, classes, expected", [
    (np.nan, [0, 1, 2, 3], 0), (np.nan, [2], 0), (np.inf, [1], 255)],
    ids=["nan-sample", "nan-in-one-class", "inf-in-one-class"])
def test_one_sample_reaches_its_own_outputs_only(value, classes, expected):
    finite = smooth(1)
    logits = finite.copy()
    logits[classes, 2, 3] = value
    conf = confidence(logits, NET)
    assert conf[2, 3] == expected
    rest = np.ones(NET, bool)
    rest[2, 3] = False
    assert np.abs(conf.astype(int) - reference(finite))[rest].max() <= 1
    conf = confidence(logits, DOUBLE)
    block = np.zeros(DOUBLE, bool)
    block[3:7, 5:9] = True  # rows 3..6 and columns 5..8: a positive weight on (2, 3)
    assert (conf[block] == expected).all()
    np.testing.assert_array_equal(conf[~block], confidence(finite, DOUBLE)[~block])


def test_minus_inf_counts_as_a_zero_probability():
    logits = smooth(2)
    logits[1, 2, 3] = -np.inf
    x = np.delete(logits[:, 2, 3].astype(np.float64), 1)
    by_hand = np.rint(255 / np.exp(x - x.max()).sum())  # class 1 left out
    assert confidence(logits, NET)[2, 3] == by_hand


@pytest.mark.parametrize("doubt", [False, True], ids=["sums", "doubt"])
def test_softmax_sums_stay_finite_for_any_logits(cpu_loops, doubt):
    """The loop's values there mean nothing (they are made again), but stay finite.

    A NaN used to reach an int32 conversion (its result undefined) and 255 / S overflowed
    where every logit was -inf.
    """
    low = np.zeros((C, 3, 4), np.float32)
    low[1, 0, 0], low[:, 1, 1], low[2, 2, 2] = np.inf, -np.inf, np.nan
    low[:, 0, 3] = np.nan
    grid = up.CellGrid((3, 4), (24, 32))
    y1 = np.minimum(grid.y.src + 1, 2)
    plan = softmax_loops.column_plan(grid.x.src, np.minimum(grid.x.src + 1, 3), grid.x.lam, 4)
    out = np.empty((24, 32), np.float32)
    with np.errstate(all="ignore"):  # the plain-Python form (tests only) warns as it goes
        softmax_loops.softmax_sums(low, (grid.y.src, y1, grid.y.lam), plan, out, doubt=doubt)
    assert np.isfinite(out).all()
    if not doubt:
        assert out.min() >= 1 and out.max() <= C


@pytest.mark.parametrize("value, expected", [(np.inf, 255), (np.nan, 0)], ids=["inf", "nan"])
def test_flip_tta_keeps_the_limits(value, expected):
    from canet_ros.inference.postprocess import flip_tta_logits

    logits = smooth(3)
    logits[2] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        averaged = flip_tta_logits(logits, logits[..., ::-1].copy())
    assert (confidence(averaged, NET) == expected).all()
    assert (confidence(averaged, ODD) == expected).all()

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

"""A merged class's classifier row, fitted on the run's frames to its parts' log-sum-exp."""
import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from canet_ros.data import SegmentationDataset
from canet_ros.models import build_canet
from canet_ros.training.replay import MixedDataset
from canet_ros.training.transfer import (
    adapt_model,
    fit_frames,
    plan_transfer,
    transfer_classifier,
)

OLD = ["Sky", "Building", "Road", "Car", "Bicyclist"]
NEW = ["Road", "vehicle", "person"]
MAP = {"vehicle": ["Car", "Bicyclist"]}


def _layers(channels=6, seed=0):
    torch.manual_seed(seed)
    old = nn.Conv2d(channels, len(OLD), 1).requires_grad_(False)
    new = nn.Conv2d(channels, len(NEW), 1).requires_grad_(False)
    return old, new


def _row(conv, k):
    return conv.weight[k, :, 0, 0].double(), float(conv.bias[k])


def test_fit_recovers_a_log_sum_exp_that_is_linear_on_the_frames():
    old, new = _layers()
    w1, b1 = _row(old, 3)
    w2, b2 = _row(old, 4)
    d, c = w1 - w2, 0.7
    # Features on the hyperplane d.f = c: there z1 - z2 = c + b1 - b2 everywhere, so
    # log(e^z1 + e^z2) = w2.f + b2 + softplus(c + b1 - b2), exactly linear in f.
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(400, 6, generator=gen, dtype=torch.float64)
    f += ((c - f @ d) / (d @ d))[:, None] * d
    shift = math.log1p(math.exp(c + b1 - b2))
    # Along d the frames never vary, so the row is the smallest-norm one that fits them.
    alpha = float(w2 @ d / (d @ d))
    want_w, want_b = w2 - alpha * d, b2 + shift + alpha * c
    assert transfer_classifier(old, new, plan_transfer(OLD, NEW, MAP), f) == ["vehicle"]
    got_w, got_b = _row(new, 1)
    assert torch.allclose(got_w, want_w, atol=1e-4) and abs(got_b - want_b) < 1e-4
    scores = f @ got_w + got_b
    exact = torch.logsumexp(torch.stack([f @ w1 + b1, f @ w2 + b2]), 0)
    assert float((scores - exact).abs().max()) < 1e-4
    assert torch.equal(new.weight[0], old.weight[2]) and new.bias[0] == old.bias[2]


def test_fit_is_the_least_squares_row_and_beats_the_mean_rule():
    old, new = _layers(seed=2)
    mean_rule = nn.Conv2d(6, len(NEW), 1).requires_grad_(False)
    plan = plan_transfer(OLD, NEW, MAP)
    transfer_classifier(old, mean_rule, plan)
    f = torch.randn(2000, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    transfer_classifier(old, new, plan, f)
    exact = torch.logsumexp(torch.stack([f @ _row(old, k)[0] + _row(old, k)[1]
                                         for k in (3, 4)]), 0)
    # The peer: numpy's least squares of the same target on [features, 1].
    design = np.hstack([f.numpy(), np.ones((len(f), 1))])
    solution = np.linalg.lstsq(design, exact.numpy(), rcond=None)[0]
    got_w, got_b = _row(new, 1)
    assert np.allclose(got_w.numpy(), solution[:-1], atol=1e-5)
    assert abs(got_b - solution[-1]) < 1e-5

    def error(conv):
        w, b = _row(conv, 1)
        return float(((f @ w + b - exact) ** 2).mean())
    assert error(new) < error(mean_rule)


def _bad_features():
    one = torch.randn(1, 6, dtype=torch.float64)
    flat = torch.ones(50, 6, dtype=torch.float64)
    nan = torch.randn(50, 6, dtype=torch.float64)
    nan[3, 2] = float("nan")
    return {"none": None, "one pixel": one, "no variance": flat, "not finite": nan,
            "empty": torch.zeros(0, 6, dtype=torch.float64)}


@pytest.mark.parametrize("case", sorted(_bad_features()))
def test_degenerate_features_fall_back_to_the_mean_rule(case):
    old, new = _layers()
    assert transfer_classifier(old, new, plan_transfer(OLD, NEW, MAP),
                               _bad_features()[case]) == []
    assert torch.allclose(new.weight[1], (old.weight[3] + old.weight[4]) / 2)
    b3, b4 = float(old.bias[3]), float(old.bias[4])
    assert math.isclose(float(new.bias[1]), math.log(math.exp(b3) + math.exp(b4)),
                        rel_tol=1e-6)


def test_the_fit_is_deterministic():
    f = torch.randn(300, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    rows = []
    for _ in range(2):
        old, new = _layers(seed=5)
        transfer_classifier(old, new, plan_transfer(OLD, NEW, MAP), f)
        rows.append((new.weight.clone(), new.bias.clone()))
    assert torch.equal(rows[0][0], rows[1][0]) and torch.equal(rows[0][1], rows[1][1])


class _Frames(SegmentationDataset):
    """Constant frames whose grey level is their number, for telling which were taken."""

    def __init__(self, values, size=(48, 32)):
        super().__init__([(f"i{v}", f"m{v}") for v in values])
        self.values, self.size = list(values), size

    def load(self, index):
        w, h = self.size
        return (np.full((h, w, 3), self.values[index], np.uint8),
                np.zeros((h, w), np.uint8))


def test_fit_frames_are_the_own_frames_evenly_spread_at_the_input_size():
    own, replay = _Frames(range(10)), _Frames([200] * 5)
    mixed = MixedDataset([own, replay], [None, None])
    frames = fit_frames(mixed, [0.0] * 3, [1 / 255] * 3, (24, 16), limit=4)
    # Positions 0, 3, 6, 9 of the 10 own frames; none of the replayed ones (grey 200).
    assert [round(float(x[0, 0, 0])) for x in frames] == [0, 3, 6, 9]
    assert all(tuple(x.shape) == (3, 16, 24) for x in frames)
    assert len(fit_frames(own, [0.0] * 3, [1.0] * 3, (24, 16))) == 10


def _vehicle_error(model, frames, fit_on, lines=None):
    x = torch.stack(frames)
    with torch.no_grad():
        exact = torch.logsumexp(model(x)[:, 3:5], 1)  # Car + Bicyclist, as one class
        adapted = adapt_model(copy.deepcopy(model), plan_transfer(OLD, NEW, MAP), fit_on,
                              lines.append if lines is not None else None).eval()
        return float((adapted(x)[:, 1] - exact).abs().mean())


def test_adapted_model_with_frames_follows_the_merged_parts_and_says_so():
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", len(OLD)).eval()
    frames = [torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(i)) * 4 - 2
              for i in range(3)]
    lines = []
    fitted = _vehicle_error(model, frames, frames, lines)
    assert fitted < 0.2 * _vehicle_error(model, frames, None)
    # 3 frames of 64x96 reach the classifier as 8x12 feature pixels each.
    assert lines == ["merged classes: vehicle fitted to their parts' combined scores on 3 "
                     "training frames (288 feature pixels)"]
    lines.clear()
    _vehicle_error(model, frames, None, lines)
    assert lines == ["merged classes: vehicle from the mean of their parts' weights "
                     "(no training frames)"]


def test_features_are_sampled_over_the_whole_frame():
    from canet_ros.training.transfer import classifier_inputs

    class Identity(nn.Module):  # the frame itself reaches the classifier
        def __init__(self):
            super().__init__()
            self.classifier = nn.Conv2d(1, 2, 1)

        def forward(self, x):
            return self.classifier(x)

    rows = torch.arange(40, dtype=torch.float32)[:, None].expand(40, 30)  # value = row
    features = classifier_inputs(Identity(), [rows[None]], max_pixels=100)
    assert 90 <= len(features) <= 100
    # Every k-th pixel, not the first 100: the bottom rows are there too.
    assert float(features.min()) == 0.0 and float(features.max()) >= 36.0

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

"""Confidence from the 1/8 logits (``softmax_loops``, ``lowres``) against torch.

Each test runs compiled (numba) and as plain Python (the ``cpu_loops`` fixture's
"opencv"), on inputs small enough for the latter.
"""
import cv2
import numpy as np
import pytest

from canet_ros.inference import device_ops as dev
from canet_ros.inference import lowres, softmax_loops
from canet_ros.inference import postprocess as post
from canet_ros.inference import upsample as up

torch = pytest.importorskip("torch")
F = torch.nn.functional


def upsampled(low, size):
    with torch.no_grad():
        return F.interpolate(torch.from_numpy(low)[None], size=size, mode="bilinear",
                             align_corners=False)[0]


def blobby(classes, hw, seed, scale=3.0):
    """1/8 logits with uniform regions and boundaries, as the network's."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, scale, (classes, 3, 4)).astype(np.float32)
    return np.stack([cv2.resize(p, hw[::-1], interpolation=cv2.INTER_CUBIC) for p in coarse])


def log_doubt(whole):
    """Return log(S - 1) of (C, H, W) float64 logits: the other classes' log-sum-exp - max.

    One top class is left out (a tie at the max stays in, adding its 1).
    """
    top = whole.argmax(0, keepdim=True)
    rest = whole.scatter(0, top, -np.inf)
    return torch.logsumexp(rest, 0) - whole.gather(0, top)[0]


def tables(low_hw, net_hw):
    grid = up.CellGrid(low_hw, net_hw)
    t = lowres._samples(grid)
    return grid, (t.y0, t.y1, grid.y.lam), t.plan


def test_column_plan_by_hand():
    """2x: column 2j reads j-1, j at 3/4 on the second; 2j+1 reads j, j+1 at 1/4."""
    grid = up.CellGrid((3, 4), (6, 8))
    t = lowres._samples(grid)
    gx0, _, _, offsets, lams = softmax_loops.column_plan(t.x0, t.x1, grid.x.lam, 4)
    assert gx0.size == 0  # phases, no gather
    np.testing.assert_array_equal(offsets, [0, 1])
    np.testing.assert_array_equal(lams, np.float32([0.75, 0.25]))


@pytest.mark.parametrize("n_in, n_out, phases", [(16, 128, True), (10, 30, True),
                                                 (7, 21, True), (8, 13, False),
                                                 (12, 20, False), (2, 16, False)])
def test_column_plan_uses_phases_only_for_whole_factors(n_in, n_out, phases):
    grid = up.CellGrid((2, n_in), (4, n_out))
    t = lowres._samples(grid)
    plan = softmax_loops.column_plan(t.x0, t.x1, grid.x.lam, n_in)
    assert (plan[0].size == 0) is phases
    assert len(plan[3]) == (n_out // n_in if phases else 1)


@pytest.mark.parametrize("low_hw, net_hw", [((5, 8), (40, 64)), ((4, 6), (15, 23)),
                                            ((3, 5), (3, 5)), ((6, 9), (12, 9))])
def test_softmax_sums_equal_torchs_over_the_upsampled_logits(cpu_loops, low_hw, net_hw):
    low = blobby(5, low_hw, seed=net_hw[1])
    low[:, 0, 0] = [0, -200, 50, 3, 3]  # exp underflows: the polynomial's floor
    _, rows, plan = tables(low_hw, net_hw)
    out = np.full(net_hw, np.nan, np.float32)
    softmax_loops.softmax_sums(low, rows, plan, out)
    whole = upsampled(low, net_hw).double()
    expected = torch.exp(whole - whole.max(0).values).sum(0).numpy()
    np.testing.assert_allclose(out, expected, rtol=2e-5)
    # Rows split as the engine's helper splits them fill the same values.
    halves = np.full(net_hw, np.nan, np.float32)
    middle = net_hw[0] // 2
    softmax_loops.softmax_sums(low, rows, plan, halves, 0, middle)
    assert np.isnan(halves[middle:]).all()
    softmax_loops.softmax_sums(low, rows, plan, halves, middle, net_hw[0])
    np.testing.assert_array_equal(halves, out)


@pytest.mark.parametrize("low_hw, net_hw", [((5, 8), (40, 64)), ((4, 6), (15, 23))])
def test_softmax_sums_give_the_doubt_log_s_minus_one(cpu_loops, low_hw, net_hw):
    """``doubt=True``: log(S - 1) of torch's upsampled logits, however small S - 1 is.

    S - 1 is 0 in float32 once S is within 6e-8 of 1 (every other class ~16.6 below the
    top); the doubt must still be the other classes' sum, down to float32's smallest
    normal, 2^-126, where it stops.
    """
    low = blobby(5, low_hw, seed=3, scale=6.0)  # S - 1 from ~1e-12 to ~4
    low[:, 0, 0] = [0, -200, -200, -200, -200]  # below 2^-126: the floor
    low[:, 0, 1] = [0, -30, -40, -30, -30]  # S is 1 in float32
    low[:, 1, 0] = [-1, 5, 5, 2, 3]  # two classes tie at the max: S - 1 >= 1
    low[:, 1, 1] = [-1, 5, 5, 2, 3]
    _, rows, plan = tables(low_hw, net_hw)
    doubt = np.empty(net_hw, np.float32)
    softmax_loops.softmax_sums(low, rows, plan, doubt, doubt=True)
    floor = -126 * np.log(2.0)
    exact = log_doubt(upsampled(low, net_hw).double()).numpy()
    assert exact.min() < floor and (exact[exact > floor] < -25).any() and exact.max() > 0
    expected = np.maximum(exact, floor)
    np.testing.assert_allclose(doubt, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("in_hw, out_hw", [((2, 6), (4, 11)), ((6, 9), (23, 20)),
                                           ((8, 8), (8, 8))])
def test_spread_confidence_is_255_over_one_plus_exp_of_the_upsampled_doubt(
        cpu_loops, in_hw, out_hw):
    doubt = np.array([[-1e30, -69.1, -20, -5.5, -0.7, 0], [1e-3, 0.5, 1.1, 2.3, 40, 1e30]],
                     np.float32)
    rng = np.random.default_rng(in_hw[0])
    if in_hw != (2, 6):
        doubt = rng.uniform(-9, 4, in_hw).astype(np.float32)
    grid = up.CellGrid(in_hw, out_hw)
    out = softmax_loops.spread_confidence(doubt, grid, np.zeros(out_hw, np.uint8))
    # Bilinear with half-pixel centres in float64 (torch's rule), then the formula.
    if np.isfinite(doubt).all() and np.abs(doubt).max() < 100:
        spread = upsampled(doubt[None].astype(np.float64), out_hw)[0].numpy()
    else:  # infinities: each output pixel from its corners by hand
        spread = np.empty(out_hw)
        y1 = np.minimum(grid.y.src + 1, in_hw[0] - 1)
        x1 = np.minimum(grid.x.src + 1, in_hw[1] - 1)
        for i, (a, b, wy) in enumerate(zip(grid.y.src, y1, grid.y.lam, strict=True)):
            for j, (c, d, wx) in enumerate(zip(grid.x.src, x1, grid.x.lam, strict=True)):
                corners = doubt[[a, a, b, b], [c, d, c, d]].astype(np.float64)
                weights = np.array([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
                spread[i, j] = corners[weights > 0] @ weights[weights > 0]
    with np.errstate(over="ignore"):
        expected = np.rint(255 / (1 + np.exp(spread)))
    assert out.dtype == np.uint8 and out.shape == out_hw
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert np.mean(out == expected) >= 0.95


@pytest.mark.parametrize("out_hw", [(1, 1), (4, 1), (2, 1), (1, 4), (3, 5)])
def test_confidence_at_size_is_the_max_softmax_at_tiny_sizes(out_hw):
    # S - 1 of 0.25 everywhere: the max softmax is 1 / 1.25 = 0.8 -> 204.
    doubt = np.full((8, 8), 0.25, np.float32)
    conf = up.confidence_at_size(up.CellGrid((8, 8), out_hw), doubt)
    assert conf.shape == out_hw and conf.dtype == np.uint8
    assert (conf == 204).all()


@pytest.mark.parametrize("poison", ["nan", "inf"])
def test_a_non_finite_lowres_sample_leaves_its_neighbours_right(cpu_loops, poison):
    """Keep finite pixels right next to NaN or inf logits (a broken model).

    A NaN doubt at network size reached the row above it through the frame-size resize.
    """
    low = blobby(4, (5, 8), seed=6)
    if poison == "nan":
        low[:, 2, 3] = np.nan
    else:
        low[1:3, 2, 3] = np.inf
    net_hw, frame_hw = (40, 64), (57, 101)
    with np.errstate(all="ignore"):
        conf = lowres._compiled(low, up.CellGrid(low.shape[1:], net_hw),
                                up.CellGrid(net_hw, frame_hw), np.dtype(np.uint8),
                                np.zeros(4, np.uint32), None, True).confidence()
        whole = upsampled(upsampled(low, net_hw).numpy().astype(np.float64), frame_hw)
        exact = 255 * whole.softmax(0).amax(0).numpy()
    finite = np.isfinite(exact)
    assert 0 < (~finite).sum() and finite.sum() > 0.8 * exact.size
    assert np.abs(conf.astype(float) - np.rint(exact))[finite].max() <= 3


@pytest.mark.parametrize("frame_hw", [(57, 101), (40, 64), (33, 50)])
def test_confidence_from_lowres_logits_as_from_the_whole_logits(cpu_loops, frame_hw):
    """The 1/8 route against torch and against ``FramePost`` on the whole logits.

    The confidence is the reference's max softmax where the frame cells are mixed,
    never above it elsewhere (see ``upsample``), and what the network-size logits'
    path (its own tests: test_frame_path) gives from torch's upsampled logits.
    """
    low = blobby(5, (5, 8), seed=frame_hw[0])
    net_hw = (40, 64)
    net_grid = up.CellGrid(low.shape[1:], net_hw)
    frame_grid = None if frame_hw == net_hw else up.CellGrid(net_hw, frame_hw)
    palette = np.zeros(5, np.uint32)
    if cpu_loops == "opencv":
        with pytest.raises(ValueError, match="compiled loops"):
            lowres.frame_post_from_lowres(low, net_grid, frame_grid, np.dtype(np.uint8),
                                          palette, want_confidence=True)
    # The compiled path's code, run as Python with "opencv".
    conf = lowres._compiled(low, net_grid, frame_grid, np.dtype(np.uint8), palette, None,
                            True).confidence()
    net = upsampled(low, net_hw)
    whole = upsampled(net.numpy(), frame_hw)
    exact = np.rint(255 * whole.softmax(0).amax(0).numpy())
    assert conf.shape == frame_hw and conf.dtype == np.uint8
    assert (conf <= exact + 1).all()
    mixed = np.ones(frame_hw, bool)  # at the network's size every pixel is exact
    if frame_grid is not None:  # the pixels of the cells whose corner labels differ
        cells = up.mixed_cells(net.argmax(0).numpy())
        mixed = cells[np.repeat(np.arange(cells.shape[0]), frame_grid.y.count)][
            :, np.repeat(np.arange(cells.shape[1]), frame_grid.x.count)]
    assert mixed.any()
    assert np.abs(conf - exact)[mixed].max() <= 1
    assert np.mean(np.abs(conf - exact) <= 2) >= 0.99
    reference = post.FramePost(net.numpy(), frame_grid, np.dtype(np.uint8), palette,
                               want_confidence=True).confidence()
    assert np.abs(conf.astype(int) - reference).max() <= 1


@pytest.mark.parametrize("shape", [(3, 1, 1), (4, 1, 4), (3, 4, 1), (5, 3, 7), (2, 40, 64)])
def test_lowres_doubt_sums_every_class_but_the_top(shape):
    """S - 1 against float64, gaps up to 80; a tie at the max adds its 1 (FramePost's)."""
    rng = np.random.default_rng(shape[1] * shape[2])
    logits = -rng.uniform(0, 80, shape).astype(np.float32)
    np.put_along_axis(logits, rng.integers(0, shape[0], (1, *shape[1:])), 0.0, 0)  # the top
    logits[:, 0, 0] = 0.0  # every class at the max: S - 1 = C - 1
    labels, best = up.argmax_classes(logits, np.dtype(np.uint8))
    doubt = up.lowres_doubt(logits, best, labels)
    wide = torch.from_numpy(logits).double()
    expected = torch.exp(log_doubt(wide)).numpy()
    assert doubt[0, 0] == shape[0] - 1
    np.testing.assert_allclose(doubt, expected, rtol=1e-5)


def reference_confidence(net, frame_hw):
    """round(255 * max softmax) of torch's upsample (float64) of network-size logits.

    Also the float64 values before rounding: 255 * max softmax.
    """
    exact = 255 * upsampled(net.astype(np.float64), frame_hw).softmax(0).amax(0).numpy()
    return np.rint(exact), exact


def confidences(low, net, frame_hw):
    """Return the frame-size confidence by FramePost, by the 1/8 path and by ``device_ops``.

    FramePost takes the network-size logits; ``device_ops`` runs on CPU tensors, in
    float32 as ``DeviceGrid`` does on the CPU.
    """
    net_hw, classes = net.shape[1:], net.shape[0]
    palette = np.zeros(classes, np.uint32)
    frame_grid = up.CellGrid(net_hw, frame_hw)
    frame_post = post.FramePost(net, frame_grid, np.dtype(np.uint8), palette,
                                want_confidence=True).confidence()
    # The compiled path's code, run as Python with "opencv" (see the test above).
    one_eighth = lowres._compiled(low, up.CellGrid(low.shape[1:], net_hw), frame_grid,
                                  np.dtype(np.uint8), palette, None, True).confidence()
    t = torch.from_numpy(net)[None]
    grid = dev.DeviceGrid(frame_grid, torch.device("cpu"))
    device = dev.confidence(grid, t, dev.labels(grid, t)[2]).numpy()
    return {"FramePost": frame_post, "1/8 logits": one_eighth, "device_ops": device}


def test_confidence_of_one_doubting_class_is_exact_past_a_gap_of_17(cpu_loops):
    """The reviewer's case: class 0 wins by 1 at one sample and by 20 at the other.

    Once every other class is ~16.6 logits below the top, S is 1 in float32; S - 1 read
    as 0 and floored at 1e-30 put 252 where the reference has 223 (upsample's promise:
    exact when one other class carries the doubt, never above otherwise).
    """
    low = np.array([[[0.0, 0.0]], [[-1.0, -20.0]]], np.float32)
    expected, _ = reference_confidence(low, (1, 20))
    # By hand: pixel 5 lies at 0.1 * 5.5 - 0.5 = 0.05 between the samples, so its gap is
    # 1 * 0.95 + 20 * 0.05 = 1.95 and 255 / (1 + e^-1.95) = 223.2.
    assert expected[0, 5] == 223
    for path, conf in confidences(low, low, (1, 20)).items():
        np.testing.assert_array_equal(conf, expected, err_msg=path)


@pytest.mark.parametrize("seed", range(8))
def test_confidence_never_above_torchs_with_large_logit_gaps(cpu_loops, seed):
    """Gaps of 0 to 80 logits from the top class, varying sample to sample.

    The confidence at the frame's size is never above the reference's (up to float32
    rounding where the true value is within 1e-3 of a half), and with two classes (one
    doubting) within 1 of it.
    """
    rng = np.random.default_rng(seed)
    classes = 2 + seed % 3
    low = -rng.uniform(0, 80, (classes, 4, 5)).astype(np.float32)
    top = np.where(rng.random((4, 5)) < 0.8, 0, rng.integers(0, classes, (4, 5)))
    np.put_along_axis(low, top[None], 0.0, 0)  # mostly class 0: few mixed cells
    if seed == 7:
        low[1] = low[0]  # class 1 ties class 0 everywhere: S - 1 >= 1 where they lead
    net = upsampled(low, (16, 20)).numpy()  # the network's own upsample, float32
    expected, exact = reference_confidence(net, (37, 53))
    ceiling = np.rint(exact + 1e-3)
    for path, conf in confidences(low, net, (37, 53)).items():
        assert conf.shape == (37, 53) and conf.dtype == np.uint8, path
        over = conf > ceiling
        assert not over.any(), (path, conf[over], exact[over])
        if classes == 2:
            assert np.abs(conf.astype(int) - expected).max() <= 1, path

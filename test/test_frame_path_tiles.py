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

"""The network-size passes taken tile by tile, and the colour taken by one table lookup.

Independent expectations: numpy's argmax (first maximum wins), max and exp-sum over the
class axis, and the palette indexed by the labels.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from canet_ros.inference import postprocess as post
from canet_ros.inference import preprocess as pre
from canet_ros.inference import upsample as up

U8 = np.dtype(np.uint8)


def tied_logits(classes: int, h: int, w: int, seed: int) -> np.ndarray:
    """Random logits with exact ties between classes planted all over, tile edges included."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (classes, h, w)).astype(np.float32)
    flat = logits.reshape(classes, -1)
    tie = rng.random(flat.shape[1]) < 0.2
    a, b = rng.integers(0, classes, (2, flat.shape[1]))
    top = flat.max(0) + 1
    flat[a[tie], np.flatnonzero(tie)] = top[tie]
    flat[b[tie], np.flatnonzero(tie)] = top[tie]
    return logits


@pytest.mark.parametrize("tile", [None, 7, 1000])
@pytest.mark.parametrize("shape", [(11, 300, 250), (3, 5, 9), (13, 1, 40001)])
def test_tiled_argmax_and_softmax_sums_equal_numpy(monkeypatch, tile, shape):
    if tile is not None:  # odd tiles: many edges and a short last tile even on small input
        monkeypatch.setattr(up, "_TILE", tile)
    logits = tied_logits(*shape, seed=sum(shape))
    labels, best = up.argmax_classes(logits, U8)
    np.testing.assert_array_equal(labels, np.argmax(logits, 0))
    np.testing.assert_array_equal(best, logits.max(0))
    total = up.lowres_softmax_sum(logits, best)
    np.testing.assert_allclose(total, np.exp(logits - logits.max(0)).sum(0), rtol=1e-5)


def test_tiled_argmax_into_halves_as_the_helper_splits_it(monkeypatch):
    monkeypatch.setattr(up, "_TILE", 333)
    logits = tied_logits(11, 64, 97, seed=3)
    labels = np.empty((64, 97), U8)
    best = np.empty((64, 97), np.float32)
    up.argmax_classes(logits[:, 32:], U8, labels[32:], best[32:])
    up.argmax_classes(logits[:, :32], U8, labels[:32], best[:32])
    np.testing.assert_array_equal(labels, np.argmax(logits, 0))
    np.testing.assert_array_equal(best, logits.max(0))


# 255 classes: the most a uint8 label map holds; 300 take the uint16 path.
@pytest.mark.parametrize("classes, dtype", [(11, np.uint8), (255, np.uint8), (300, np.uint16)])
@pytest.mark.parametrize("out_hw", [(40, 56), (97, 131)])
def test_colour_is_the_palette_of_the_labels(classes, dtype, out_hw):
    rng = np.random.default_rng(classes)
    palette = rng.integers(0, 256, (classes, 3), dtype=np.uint8)
    logits = rng.normal(0, 1, (classes, 40, 56)).astype(np.float32)
    grid = None if out_hw == (40, 56) else up.CellGrid((40, 56), out_hw)
    frame_post = post.FramePost(logits, grid, np.dtype(dtype), up.pack_palette(palette))
    labels = frame_post.labels
    assert labels.shape == out_hw and labels.dtype == dtype
    np.testing.assert_array_equal(up.unpack_colour(frame_post.colour_packed(), "rgb"),
                                  palette[labels])
    np.testing.assert_array_equal(up.unpack_colour(frame_post.colour_packed(), "bgr"),
                                  palette[labels][..., ::-1])
    np.testing.assert_array_equal(frame_post.colour("rgb"), palette[labels])
    np.testing.assert_array_equal(frame_post.colour("bgr"), palette[labels][..., ::-1])


@pytest.mark.parametrize("order", ["rgb", "bgr"])
@pytest.mark.parametrize("frame_hw, size", [((37, 50), (20, 16)), ((150, 171), (96, 70))])
def test_resized_input_is_the_float_resize_within_half_a_sixteen_bit_step(order, frame_hw,
                                                                          size, cpu_loops):
    # Reference by hand, in float64: bilinear, half-pixel centres, edges clamped (the
    # reference's align_corners=False), then (x / 255 - mean) / std per RGB channel.
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = pre.Preprocessor(size, mean, std)(frame, order)
    # With a helper thread (rows split between two cores, from 64 rows up): bit for bit.
    with ThreadPoolExecutor(max_workers=1) as helper:
        shared = pre.Preprocessor(size, mean, std)(frame, order, helper=helper)
    np.testing.assert_array_equal(shared, out)

    def axis(n_out, n_in):
        pos = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
        i0 = np.minimum(np.floor(pos).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), pos - i0

    y0, y1, wy = axis(size[1], frame_hw[0])
    x0, x1, wx = axis(size[0], frame_hw[1])
    f = frame.astype(np.float64)
    rows = f[y0] * (1 - wy)[:, None, None] + f[y1] * wy[:, None, None]
    resized = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    rgb = resized if order == "rgb" else resized[..., ::-1]
    expected = (rgb / 255 - np.array(mean)) / np.array(std)
    # OpenCV resizes the frame in 16 bits (x 256): within half a step, 1/512 of a grey
    # level. The numba loop resizes in float32 as torch does, positions included, which
    # is as far from this float64 reference (test_kernels checks it against torch).
    tolerance = (0.5 / 256 + 1e-3) / 255 / min(std)
    assert np.abs(out[0].transpose(1, 2, 0) - expected).max() <= tolerance

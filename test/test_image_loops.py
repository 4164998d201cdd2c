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

"""``image_loops`` (gather, blend) and ``preprocess.share_rows``, by hand and numpy.

Run compiled and as plain Python (the ``cpu_loops`` fixture's "opencv" leg runs the
same functions uncompiled), on small images.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from canet_ros.classes import CAMVID
from canet_ros.inference import image_loops
from canet_ros.inference import upsample as up
from canet_ros.inference.postprocess import FramePost
from canet_ros.inference.preprocess import share_rows

LOOPS = ["opencv", "numba"]


@pytest.mark.parametrize("cpu_loops", LOOPS, indirect=True)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gather_rows_is_numpy_fancy_indexing(cpu_loops, dtype):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 300 if dtype == np.uint16 else 200, (7, 9)).astype(dtype)
    ys = np.array([0, 0, 1, 1, 1, 3, 2, 2, 6, 6, 0])  # repeats (copied) and revisits
    xs = np.array([8, 0, 0, 1, 5, 5, 5, 2])
    out = np.full((11, 8), 77, dtype)
    assert image_loops.gather_rows(src, ys, xs, out) is out
    np.testing.assert_array_equal(out, src[ys][:, xs])
    np.testing.assert_array_equal(image_loops.gather_rows(src, ys, xs), src[ys][:, xs])
    with pytest.raises(ValueError, match="uint8 .*the gather makes"):
        image_loops.gather_rows(src.astype(np.uint16) if dtype == np.uint8 else src,
                                ys, xs, np.zeros((11, 8), np.uint8))


@pytest.mark.parametrize("cpu_loops", LOOPS, indirect=True)
def test_gather_rows_paints_the_palettes_colours(cpu_loops):
    rng = np.random.default_rng(4)
    src = rng.integers(0, 5, (6, 7)).astype(np.uint8)
    ys, xs = np.array([0, 0, 1, 2, 2, 2, 5]), np.array([0, 1, 1, 6, 3])
    palette = image_loops.palette_table(up.pack_palette(
        rng.integers(0, 256, (5, 3)).astype(np.uint8)))
    assert palette.shape == (256, 3) and not palette[5:].any()
    colour = np.zeros((7, 5, 3), np.uint8)
    labels = image_loops.gather_rows(src, ys, xs, None, palette, colour)
    np.testing.assert_array_equal(labels, src[ys][:, xs])
    np.testing.assert_array_equal(colour, palette[labels])
    with pytest.raises(ValueError, match="colour must be contiguous uint8"):
        image_loops.gather_rows(src, ys, xs, None, palette, np.zeros((7, 5, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 labels and a .256, 3. palette"):
        image_loops.gather_rows(src.astype(np.uint16), ys, xs, None, palette, colour)


@pytest.mark.parametrize("cpu_loops", LOOPS, indirect=True)
@pytest.mark.parametrize("in_hw, out_hw", [((8, 16), (64, 128)), ((5, 7), (12, 30)),
                                           ((64, 128), (120, 200)), ((9, 9), (5, 4))])
def test_gather_takes_a_corner_of_every_cell(cpu_loops, in_hw, out_hw):
    """Either path: each pixel gets one of its cell's four corners (by the grid's tables).

    Values all distinct, so which sample a pixel took shows; a uniform cell therefore
    gets its label whichever corner is taken.
    """
    grid = up.CellGrid(in_hw, out_hw)
    values = np.arange(in_hw[0] * in_hw[1], dtype=np.uint16).reshape(in_hw)
    out = up.gather(grid, values)
    rows, cols = np.divmod(out.astype(np.int64), in_hw[1])
    cell_y = np.repeat(np.arange(in_hw[0] + 1), grid.y.count)
    cell_x = np.repeat(np.arange(in_hw[1] + 1), grid.x.count)
    for y in range(out_hw[0]):
        assert set(rows[y]) <= {grid.y.lo[cell_y[y]], grid.y.hi[cell_y[y]]}
    for x in range(out_hw[1]):
        assert set(cols[:, x]) <= {grid.x.lo[cell_x[x]], grid.x.hi[cell_x[x]]}


def exact_blend(frame, colour, alpha):
    """round((1 - a) * frame + a * colour) in float64, and where that is an exact half."""
    exact = (1 - alpha) * frame.astype(np.float64) + alpha * colour.astype(np.float64)
    return np.floor(exact + 0.5), np.isclose(exact - np.floor(exact), 0.5)


@pytest.mark.parametrize("cpu_loops", LOOPS, indirect=True)
@pytest.mark.parametrize("alpha", [0.5, 0.25, 0.4, 0.73, 0.0, 1.0])
@pytest.mark.parametrize("swap", [False, True])
def test_blend_is_the_rounded_weighted_sum(cpu_loops, alpha, swap):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (13, 17, 3)).astype(np.uint8)
    colour = rng.integers(0, 256, (13, 17, 3)).astype(np.uint8)
    frame[0, :3] = colour[0, :3] = [[0, 0, 0], [255, 255, 255], [0, 255, 0]]  # extremes
    out = image_loops.blend(frame, colour, alpha, swap)
    expected, half = exact_blend(frame, colour[..., ::-1] if swap else colour, alpha)
    diff = np.abs(out.astype(int) - expected)
    assert out.dtype == np.uint8 and (diff[~half] == 0).all() and (diff[half] <= 1).all()


@pytest.mark.parametrize("cpu_loops", ["numba"], indirect=True)
def test_blend_writes_into_out_and_refuses_misfits(cpu_loops):
    frame = np.full((4, 5, 3), 100, np.uint8)
    colour = np.full((4, 5, 3), 200, np.uint8)
    out = np.zeros((4, 5, 3), np.uint8)
    assert image_loops.blend(frame, colour, 0.5, out=out) is out and (out == 150).all()
    with pytest.raises(ValueError, match="one size"):
        image_loops.blend(frame, colour[:3], 0.5)
    with pytest.raises(ValueError, match="out must be contiguous uint8"):
        image_loops.blend(frame, colour, 0.5, out=np.zeros((4, 5, 3), np.float32))
    assert image_loops.usable(out, (4, 5, 3), np.uint8) is out
    assert image_loops.usable(out, (4, 6, 3), np.uint8) is None
    assert image_loops.usable(out[:, ::2], (4, 3, 3), np.uint8) is None  # not contiguous
    assert image_loops.usable(None, (4, 5, 3), np.uint8) is None


@pytest.mark.parametrize("cpu_loops", LOOPS, indirect=True)
def test_a_bgr_overlay_needs_one_colour_map_with_the_loops(cpu_loops, monkeypatch):
    """With numba the BGR overlay reads the RGB colour swapped; both paths agree."""
    labels = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    post = FramePost(np.zeros((11, 2, 3), np.float32), None, np.dtype(np.uint8),
                     up.pack_palette(np.array(CAMVID.colors, np.uint8)), labels=labels)
    orders = []
    colour = post.colour
    monkeypatch.setattr(post, "colour", lambda order, out=None: orders.append(order)
                        or colour(order, out))
    rgb = post.colour("rgb")
    frame = np.random.default_rng(3).integers(0, 256, (2, 3, 3)).astype(np.uint8)
    overlay = post.overlay(frame, "bgr", 0.4, rgb)
    expected, half = exact_blend(frame, np.array(CAMVID.colors, np.uint8)[labels][..., ::-1],
                                 0.4)
    assert (np.abs(overlay.astype(int) - expected)[~half] == 0).all()
    assert orders == (["rgb"] if cpu_loops == "numba" else ["rgb", "bgr"])


@pytest.mark.parametrize("busy", [False, True])
def test_share_rows_covers_every_row_once_with_or_without_a_free_helper(busy):
    seen, who = np.zeros(100, int), set()
    gate = threading.Event()

    def work(rows):
        seen[rows] += 1
        who.add(threading.current_thread().name)
        if not busy:  # give the free helper time to take a band too
            threading.Event().wait(0.01)

    with ThreadPoolExecutor(1) as helper:
        if busy:  # the helper is on other work until this thread has taken all
            helper.submit(gate.wait)
        share_rows(helper, 100, work, bands=8)
        assert (seen == 1).all()  # nothing missed, nothing twice, all done on return
        gate.set()
    assert (len(who) == 1) is busy  # a busy helper is not waited for


def test_share_rows_raises_the_helpers_error():
    def work(rows):
        if rows.start >= 50:
            raise RuntimeError(f"band {rows.start}")
        threading.Event().wait(0.01)  # the helper takes the bands that fail

    with ThreadPoolExecutor(1) as helper, pytest.raises(RuntimeError, match="band"):
        share_rows(helper, 100, work, bands=4)
    share_rows(None, 100, lambda rows: None)  # no helper: one call, no error

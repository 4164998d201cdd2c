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

"""The numba loops of ``inference.kernels`` against torch, compiled and as plain Python.

With the ``cpu_loops`` fixture's "opencv" (``CANET_ROS_NUMBA=0``) the same functions run
uncompiled, as plain Python, on these small inputs: the logic is checked on machines
without numba too, and the compiled code where numba is.
"""
import concurrent.futures
import contextlib
import errno
import logging
import os
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from canet_ros.inference import cell_loops, image_loops, kernels, lowres
from canet_ros.inference import upsample as up

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_input(frame, size, order, mean, std):
    rgb = frame if order == "rgb" else frame[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=size[::-1], mode="bilinear", align_corners=False)
    return ((x / 255 - torch.tensor(mean).view(1, 3, 1, 1))
            / torch.tensor(std).view(1, 3, 1, 1))[0].numpy()


@pytest.mark.parametrize("frame_hw, size", [
    ((37, 50), (20, 16)),     # down, non-integer factors
    ((24, 30), (61, 45)),     # up
    ((40, 23), (23, 40)),     # same width, down in height
    ((1, 9), (5, 3)),         # a one-row frame: both rows clamp to it
])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_resize_normalise_is_torchs_float_resize(cpu_loops, frame_hw, size, order):
    rng = np.random.default_rng(sum(frame_hw))
    frame = rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    width, height = size
    out = np.full((3, height, width), np.nan, np.float32)
    rows = kernels.AxisTables(height, frame_hw[0])
    cols = kernels.AxisTables(width, frame_hw[1], stride=3)
    chan = np.arange(3) if order == "rgb" else np.arange(2, -1, -1)
    scale = (1 / (255 * np.array(std))).astype(np.float32)
    bias = (-np.array(mean) / np.array(std)).astype(np.float32)
    kernels.resize_normalise(frame, out, rows, cols, chan, scale, bias, 0, height)
    # Same sample positions and weights as torch; rows blended before columns and the
    # normalisation as one multiply-add: a few float32 ulps of values up to ~2.7
    # (1e-5 is 0.0006 of a grey level; the 16-bit OpenCV path is allowed 0.003).
    np.testing.assert_allclose(out, torch_input(frame, size, order, mean, std), rtol=0,
                               atol=1e-5)


def test_resize_normalise_fills_only_the_rows_asked_for(cpu_loops):
    frame = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = np.zeros((3, 12, 16), np.float32)
    ones = np.ones(3, np.float32)
    kernels.resize_normalise(frame, out, kernels.AxisTables(12, 30),
                             kernels.AxisTables(16, 40, stride=3), np.arange(3), ones,
                             np.zeros(3, np.float32), 4, 9)
    assert not out[:, :4].any() and not out[:, 9:].any() and out[:, 4:9].all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_argmax_takes_the_first_of_tied_maxima(cpu_loops, dtype):
    rng = np.random.default_rng(2)
    logits = rng.integers(-2, 3, (9, 13, 17)).astype(np.float32)  # many exact ties
    labels, best = kernels.argmax(logits, np.dtype(dtype))
    assert labels.dtype == dtype and labels.shape == (13, 17)
    np.testing.assert_array_equal(labels, np.argmax(logits, 0))
    np.testing.assert_array_equal(best, logits.max(0))


@pytest.mark.parametrize("classes, dtype", [(5, np.uint8), (300, np.uint16)])
def test_mixed_cells_in_both_steps_equal_two_torch_upsamples(cpu_loops, classes, dtype):
    """The whole compiled label path (``lowres._compiled``), uncompiled too."""
    rng = np.random.default_rng(classes)
    low = np.stack([cv2.resize(p, (8, 5), interpolation=cv2.INTER_CUBIC) for p in
                    rng.normal(0, 3, (classes, 3, 3)).astype(np.float32)])
    net_hw, frame_hw = (40, 64), (57, 101)
    post = lowres._compiled(low, up.CellGrid(low.shape[1:], net_hw),
                            up.CellGrid(net_hw, frame_hw), np.dtype(dtype),
                            np.zeros(classes, np.uint32), None, False)
    with torch.no_grad():
        net = F.interpolate(torch.from_numpy(low)[None], size=net_hw, mode="bilinear",
                            align_corners=False)
        whole = F.interpolate(net, size=frame_hw, mode="bilinear", align_corners=False)[0]
    top2 = whole.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > 1e-4).numpy()
    assert decided.mean() > 0.99
    assert post.labels.dtype == dtype and post.labels.shape == frame_hw
    assert not ((post.labels != whole.argmax(0).numpy()) & decided).any()
    # Some cells of both steps were mixed, so the interpolating loop did run.
    assert len(np.unique(post.labels)) > 2


def test_fix_cells_writes_only_the_pixels_of_the_cells_given(cpu_loops):
    low = np.random.default_rng(3).normal(size=(4, 3, 5)).astype(np.float32)
    grid = up.CellGrid((3, 5), (12, 20))
    out = np.full((12, 20), 255, np.uint8)
    cell = 2 * (5 + 1) + 3  # cell (2, 3): between samples rows 1-2, columns 2-3
    cell_loops.fix_cells(np.ascontiguousarray(low.transpose(1, 2, 0)), np.array([cell]),
                         cell_loops.identity_samples(3, 5), grid, out)
    rows = slice(grid.y.start[2], grid.y.start[2] + grid.y.count[2])
    cols = slice(grid.x.start[3], grid.x.start[3] + grid.x.count[3])
    whole = F.interpolate(torch.from_numpy(low)[None], size=(12, 20), mode="bilinear",
                          align_corners=False)[0].argmax(0).numpy()
    np.testing.assert_array_equal(out[rows, cols], whole[rows, cols])
    out[rows, cols] = 255
    assert (out == 255).all()


def test_labels_alone_keep_every_class_that_can_win_inside_a_cell(cpu_loops):
    """Class 2 is best at no corner yet wins mid-cell; class 3 can never win (pruned).

    Corners alternate between classes 0 and 1 (10 vs 0) with class 2 at 9 everywhere:
    halfway, 0 and 1 fall to 5 and class 2 wins. Cells of 64 pixels (the network's 8x)
    take the path that drops classes first; the labels must be torch's argmax.
    """
    low = np.zeros((4, 3, 4), np.float32)
    checker = (np.add.outer(np.arange(3), np.arange(4)) % 2).astype(np.float32)
    low[0], low[1], low[2], low[3] = 10 * checker, 10 * (1 - checker), 9, -5
    grid = up.CellGrid((3, 4), (24, 32))
    cells = cell_loops.mixed_cells(low.argmax(0).astype(np.uint8))
    labels = np.full((24, 32), 255, np.uint8)
    cell_loops.fix_cells(np.ascontiguousarray(low.transpose(1, 2, 0)), cells,
                         cell_loops.identity_samples(3, 4), grid, labels)
    whole = F.interpolate(torch.from_numpy(low)[None], size=(24, 32), mode="bilinear",
                          align_corners=False)[0]
    top2 = whole.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > 1e-4).numpy()
    fixed = labels != 255
    assert fixed.sum() >= 64 and (labels[fixed] == 2).any()
    np.testing.assert_array_equal(labels[fixed & decided],
                                  whole.argmax(0).numpy()[fixed & decided])


def test_fix_cells_confidence_is_the_max_softmax_there(cpu_loops):
    low = np.random.default_rng(5).normal(0, 2, size=(4, 3, 5)).astype(np.float32)
    grid = up.CellGrid((3, 5), (12, 20))
    labels, conf = np.zeros((12, 20), np.uint8), np.full((12, 20), 7, np.uint8)
    cells = np.array([2 * (5 + 1) + 3, 0, 23])  # (2, 3), a corner, the last
    cell_loops.fix_cells(np.ascontiguousarray(low.transpose(1, 2, 0)), cells,
                         cell_loops.identity_samples(3, 5), grid, labels, conf)
    whole = F.interpolate(torch.from_numpy(low)[None], size=(12, 20), mode="bilinear",
                          align_corners=False)[0]
    expected = np.rint(255 * whole.softmax(0).amax(0).numpy())
    mask = np.zeros((12, 20), np.uint8)
    cell_loops.copy_cells(cells, grid, np.ones((12, 20), np.uint8), mask)
    assert 0 < mask.sum() < mask.size
    # By hand: cell (2, 3) spans the rows and columns the grid gives it.
    rows = slice(grid.y.start[2], grid.y.start[2] + grid.y.count[2])
    cols = slice(grid.x.start[3], grid.x.start[3] + grid.x.count[3])
    assert mask[rows, cols].all()
    done = mask.astype(bool)
    assert np.abs(conf[done] - expected[done]).max() <= 1
    assert (conf[~done] == 7).all()
    # With a palette the same pixels get their label's colour, and only they.
    palette = np.zeros((256, 3), np.uint8)
    palette[:4] = [[10, 20, 30], [40, 50, 60], [70, 80, 90], [1, 2, 3]]
    colour = np.full((12, 20, 3), 200, np.uint8)
    again = np.zeros_like(labels)
    cell_loops.fix_cells(np.ascontiguousarray(low.transpose(1, 2, 0)), cells,
                         cell_loops.identity_samples(3, 5), grid, again, None, (palette, colour))
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_array_equal(colour[done], palette[labels[done]])
    assert (colour[~done] == 200).all()


def test_switched_off_by_the_environment_or_a_missing_numba(monkeypatch, caplog):
    monkeypatch.setenv(kernels.ENV, "0")
    assert not kernels.available()
    monkeypatch.delenv(kernels.ENV)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    kernels._numba.cache_clear()
    try:
        assert not kernels.available()
        # The loops still run, as Python.
        labels, _ = kernels.argmax(np.eye(3, dtype=np.float32), np.dtype(np.uint8))
        np.testing.assert_array_equal(labels, [0, 1, 2])
    finally:
        kernels._numba.cache_clear()
    assert "numba" not in caplog.text  # not installed: nothing to warn about


def test_a_numba_that_is_there_but_fails_to_import_is_reported(numba_import_fails, caplog):
    assert not kernels.available()
    assert "numba is installed but does not import (No module named 'pkg_resources')" \
        in caplog.text


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (23, 31)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_mixed_cells_listed_as_upsample_marks_them(cpu_loops, shape, dtype):
    rng = np.random.default_rng(shape[1])
    labels = rng.integers(0, 3, shape).astype(dtype)
    labels[: shape[0] // 2] = 1  # uniform stretches too
    np.testing.assert_array_equal(cell_loops.mixed_cells(labels),
                                  np.flatnonzero(up.mixed_cells(labels)))


def test_loops_compile_uncached_where_no_cache_is_writable(monkeypatch, caplog):
    """Compile uncached where numba refuses ``cache=True`` (read-only install and home)."""
    calls = []

    class Numba:
        @staticmethod
        def njit(cache=False, **options):
            calls.append(cache)
            if cache:
                raise RuntimeError("cannot cache function 'f': no locator available")
            return lambda fn: fn

    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "_numba", lambda: Numba)
    monkeypatch.setattr(kernels, "_NO_CACHE", [], raising=False)  # earlier tests: forgotten
    first, second = kernels._Loop(lambda x: x + 1), kernels._Loop(lambda x: x * 3)
    assert first(1) == 2 and first(2) == 3 and second(2) == 6  # each compiled once
    assert calls == [True, False, False]  # the second does not ask for a cache again
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "cannot cache" in said[0]
    assert str(Path(__file__).parent / "__pycache__") in said[0]


@pytest.fixture
def numba_cache(monkeypatch, tmp_path):
    """Real numba with its cache in ``tmp_path``; the loops compiled earlier forgotten."""
    numba = pytest.importorskip("numba")
    monkeypatch.delenv(kernels.ENV, raising=False)
    if not kernels.available():
        pytest.skip("numba does not compile here")
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(kernels, "_NO_CACHE", [], raising=False)
    for fresh in (kernels._argmax, image_loops._blend_fixed, image_loops._blend):
        monkeypatch.setattr(fresh, "_compiled", None)
    return tmp_path / "numba"


def full_disk(monkeypatch):
    """Make every write into numba's cache fail as on a full disk (ENOSPC)."""
    from numba.core import caching

    real = caching.IndexDataCacheFile._open_for_write

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    @contextlib.contextmanager
    def open_for_write(self, filepath):
        with real(self, filepath) as fh:  # its clean-up of the temp file runs
            yield Full(fh)

    monkeypatch.setattr(caching.IndexDataCacheFile, "_open_for_write", open_for_write)


def test_a_cache_numba_cannot_write_leaves_the_loops_running_uncached(
        numba_cache, monkeypatch, caplog):
    """A full disk under numba's cache: the loops run, one warning names the folder."""
    full_disk(monkeypatch)
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((4, 6, 7)).astype(np.float32)
    frame = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    colour = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    labels, best = kernels.argmax(logits, np.dtype(np.uint8))
    np.testing.assert_array_equal(labels, logits.argmax(axis=0))
    np.testing.assert_array_equal(best, logits.max(axis=0))
    # 0.5: in 1/256ths, halves up: floor((f + c + 1) / 2); 0.3: float32 as addWeighted.
    exact = frame.astype(np.int64) + colour
    np.testing.assert_array_equal(image_loops.blend(frame, colour, 0.5), (exact + 1) // 2)
    add = np.float32(0.3)
    np.testing.assert_array_equal(image_loops.blend(frame, colour, 0.3), (
        frame.astype(np.float32) * (np.float32(1) - add) + colour.astype(np.float32) * add
        + np.float32(0.5)).astype(np.uint8))
    np.testing.assert_array_equal(kernels.argmax(logits[:2], np.dtype(np.uint16))[0],
                                  logits[:2].argmax(axis=0))  # a new signature: no retry
    said = [r for r in caplog.records if r.name == "canet_ros.inference"]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert str(numba_cache) in said[0].getMessage()
    assert "No space left on device" in said[0].getMessage()
    assert [p for p in numba_cache.rglob("*") if p.is_file()] == []  # nothing half-written


def test_a_read_only_cache_is_said_once_for_every_loop(numba_cache, monkeypatch, caplog):
    """No folder numba tries can be written: each loop compiles uncached, one warning."""
    from numba.core import caching

    def read_only(locator):  # what numba's probe of a read-only install's folder meets
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), locator._cache_path)

    monkeypatch.setattr(sys.modules["numba"].config, "CACHE_DIR", "")  # numba's default
    monkeypatch.setattr(caching.InTreeCacheLocator, "ensure_cache_path", read_only)
    (numba_cache.parent / "a_file").write_text("")
    user_cache = numba_cache.parent / "a_file"  # below a regular file: root cannot either
    monkeypatch.setenv("XDG_CACHE_HOME", str(user_cache))
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((3, 5, 4)).astype(np.float32)
    frame, colour = rng.integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(kernels.argmax(logits, np.dtype(np.uint8))[0],
                                  logits.argmax(axis=0))
    exact = frame.astype(np.int64) + colour
    np.testing.assert_array_equal(image_loops.blend(frame, colour, 0.5), (exact + 1) // 2)
    said = [r.getMessage() for r in caplog.records if r.name == "canet_ros.inference"]
    assert len(said) == 1 and "NUMBA_CACHE_DIR" in said[0]  # two loops, one warning
    assert str(Path(kernels.__file__).parent / "__pycache__") in said[0]
    assert str(user_cache / "numba") in said[0]


def test_a_numba_cache_dir_that_cannot_be_written_is_the_folder_named(
        numba_cache, monkeypatch, caplog):
    """NUMBA_CACHE_DIR set to a folder nobody can make: the warning names that folder."""
    from numba.core import caching

    def read_only(locator):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), locator._cache_path)

    (numba_cache.parent / "a_file").write_text("")
    chosen = numba_cache.parent / "a_file" / "numba"  # below a regular file: root cannot
    monkeypatch.setattr(sys.modules["numba"].config, "CACHE_DIR", str(chosen))
    # numba goes on to the module's __pycache__ and the user cache: neither writable here.
    monkeypatch.setattr(caching.InTreeCacheLocator, "ensure_cache_path", read_only)
    monkeypatch.setenv("XDG_CACHE_HOME", str(chosen))
    logits = np.random.default_rng(7).standard_normal((3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(kernels.argmax(logits, np.dtype(np.uint8))[0],
                                  logits.argmax(axis=0))
    said = [r.getMessage() for r in caplog.records if r.name == "canet_ros.inference"]
    assert len(said) == 1 and f"in {chosen} (cannot be written)" in said[0]


def test_two_threads_meeting_a_full_cache_at_once_both_run(monkeypatch, caplog):
    """The frame path's helper thread and the caller both on a loop's first call."""
    inside, replaced = threading.Barrier(2, timeout=30), threading.Event()
    turns = iter(range(2))

    class Numba:
        @staticmethod
        def njit(cache=False, **options):
            def cached(fn):
                def run(*args):
                    inside.wait()  # both threads are in the caching loop before either fails
                    if next(turns):  # the second fails once the first has fallen back
                        assert replaced.wait(30)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/full/f.nbi.tmp")
                return run

            def uncached(fn):
                def run(*args):
                    replaced.set()
                    return fn(*args)
                return run
            return cached if cache else uncached

    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "_numba", lambda: Numba)
    monkeypatch.setattr(kernels, "_NO_CACHE", [], raising=False)
    twice = kernels._Loop(lambda x: 2 * x)
    twice._compiled = (Numba.njit(cache=True)(twice.python), True)  # as both threads see it
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert list(pool.map(twice, [3, 4])) == [6, 8]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "/full (No space left on device)" in said[0]

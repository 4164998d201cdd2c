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

"""The frame path at camera sizes: labels, colour and confidence without upsampling logits.

Checked against the reference semantics computed independently in plain torch
(``F.interpolate`` of the logits, then argmax / softmax): exact labels up to float ties,
on random logits at many size pairs and on the bundled model's logits for real CamVid
frames; and the whole engine's agreement with the reference pipeline on real frames
upscaled to 1920x1200 (docs/performance.md quotes these figures).
"""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from canet_ros.inference import SegmentationEngine
from canet_ros.inference import device_ops as dev
from canet_ros.inference import postprocess as post
from canet_ros.inference import upsample as up

pytestmark = pytest.mark.usefixtures("one_torch_thread")

U8 = np.dtype(np.uint8)
CAMVID_ROOT = Path(os.environ.get("CANET_CAMVID_ROOT")
                   or Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid")


def reference(logits, out_hw):
    """(C, h, w) numpy -> upsampled (C, H, W) torch, the semantics the engine promises."""
    t = torch.from_numpy(np.ascontiguousarray(logits))[None]
    return F.interpolate(t, size=tuple(out_hw), mode="bilinear", align_corners=False)[0]


def decided(ref, eps=1e-4):
    top2 = ref.topk(2, dim=0).values
    return (top2[0] - top2[1] > eps).numpy()


def smooth_logits(classes, h, w, seed, scale=3.0):
    """Blobby logits: large uniform regions and boundaries, like a segmentation network's."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, scale, (classes, max(2, h // 6), max(2, w // 6))).astype(np.float32)
    return np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_CUBIC) for p in coarse])


def test_cells_by_hand():
    # 1-D reasoning per axis: 2 samples -> 4 outputs. Positions (x + 0.5) / 2 - 0.5 are
    # -0.25, 0.25, 0.75, 1.25: cell -1 (clamped to sample 0) gets output 0, cell 0
    # (between samples 0 and 1) outputs 1 and 2, cell 1 (past the last sample) output 3.
    grid = up.CellGrid((2, 2), (4, 4))
    np.testing.assert_array_equal(grid.x.count, [1, 2, 1])
    np.testing.assert_array_equal(grid.x.start, [0, 1, 3])
    np.testing.assert_array_equal(grid.x.src, [0, 0, 0, 1])
    # Past the last sample both corners are sample 1, so the weight (0.25) is moot.
    np.testing.assert_allclose(grid.x.lam, [0.0, 0.25, 0.75, 0.25])
    labels = np.array([[0, 0], [0, 1]], np.uint8)
    # (3, 3) cells: those with the 1 and a 0 among their corners; the corner cell past
    # both edges has four copies of the 1.
    mixed = up.mixed_cells(labels)
    np.testing.assert_array_equal(mixed, [[0, 0, 0], [0, 1, 1], [0, 1, 0]])
    # Output row/column 0 lies in uniform cells (all corners 0); pixel (3, 3) in the
    # corner cell of four 1s.
    gathered = up.gather(grid, labels)
    assert (gathered[0] == 0).all() and (gathered[:, 0] == 0).all() and gathered[3, 3] == 1


@pytest.mark.parametrize("in_hw, out_hw", [((512, 1024), (1200, 1920)), ((360, 480), (1080, 1920)),
                                           ((512, 1024), (480, 640)), ((131, 97), (777, 1333)),
                                           ((64, 64), (64, 200))])
def test_gather_takes_a_corner_of_each_pixels_cell(in_hw, out_hw):
    h, w = in_hw
    grid = up.CellGrid(in_hw, out_hw)
    ids = up.gather(grid, np.arange(h * w, dtype=np.uint32).reshape(h, w)).astype(np.int64)
    rows, cols = ids // w, ids % w
    # Independently: the reference's two source samples of each output row and column.
    y = np.maximum((np.arange(out_hw[0]) + 0.5) * h / out_hw[0] - 0.5, 0)
    x = np.maximum((np.arange(out_hw[1]) + 0.5) * w / out_hw[1] - 0.5, 0)
    y0, x0 = np.minimum(np.floor(y), h - 1).astype(int), np.minimum(np.floor(x), w - 1).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    assert (((rows == y0[:, None]) | (rows == y1[:, None]))
            & ((cols == x0[None]) | (cols == x1[None]))).all()


@pytest.mark.parametrize("in_hw, out_hw", [
    ((24, 32), (75, 100)), ((24, 32), (24, 32)), ((24, 32), (13, 19)), ((17, 23), (100, 41)),
    ((8, 8), (64, 64)), ((24, 32), (24, 97))])
@pytest.mark.parametrize("seed", [0, 1])
def test_labels_equal_reference_on_random_logits(in_hw, out_hw, seed):
    logits = smooth_logits(7, *in_hw, seed)
    ref = reference(logits, out_hw)
    labels, conf = post.labels_cpu(logits, out_hw, U8, confidence=True)
    ok = decided(ref)
    assert ok.mean() > 0.97
    mismatch = (labels != ref.argmax(0).numpy()) & ok
    assert not mismatch.any(), f"{int(mismatch.sum())} decided pixels differ"
    exact = np.rint(255 * ref.softmax(0).amax(0).numpy())
    diff = conf.astype(int) - exact
    # Interpolated confidence never exceeds the truth (log-sum-exp is convex) ...
    assert diff.max() <= 1
    # ... and mixed cells are computed exactly.
    grid = up.CellGrid(in_hw, out_hw)
    cells = up.mixed_cells(up.argmax_classes(logits, U8)[0])
    fixed = up.fix_mixed(grid, logits, cells, U8, keep_values=True)
    np.testing.assert_array_equal(conf.reshape(-1)[fixed.index],
                                  exact.reshape(-1)[fixed.index].astype(np.uint8))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 37])
def test_argmax_and_softmax_sums_of_few_values(n):
    # One mixed cell gives a handful of values per class: OpenCV would read a 1-D array
    # of up to four of them as a Scalar.
    values = np.random.default_rng(n).normal(0, 2, (6, n)).astype(np.float32)
    values[2, 0] = values[4, 0] = values[:, 0].max() + 1  # a tie: the first wins
    labels, best = up.argmax_classes(values, U8)
    np.testing.assert_array_equal(labels, np.argmax(values, 0))
    np.testing.assert_array_equal(best, values.max(0))
    total = up.lowres_softmax_sum(values, best)
    np.testing.assert_allclose(total, np.exp(values - values.max(0)).sum(0), rtol=1e-5)


def test_a_single_mixed_cell():
    logits = np.zeros((3, 40, 40), np.float32)
    logits[1, 20, 20] = 5.0  # one sample of class 1: its four cells are mixed
    out_hw = (120, 120)
    labels, conf = post.labels_cpu(logits, out_hw, U8, confidence=True)
    ref = reference(logits, out_hw)
    ok = decided(ref)
    assert not ((labels != ref.argmax(0).numpy()) & ok).any()
    exact = np.rint(255 * ref.softmax(0).amax(0).numpy())
    assert np.abs(conf.astype(int) - exact).max() <= 1


def test_chunked_mixed_cells_equal_one_pass(monkeypatch):
    logits = smooth_logits(5, 30, 40, 3, scale=1.0)  # many mixed cells
    grid = up.CellGrid((30, 40), (97, 151))
    cells = up.mixed_cells(up.argmax_classes(logits, U8)[0])
    whole = up.fix_mixed(grid, logits, cells, U8, keep_values=True)
    monkeypatch.setattr(up, "_CHUNK_ELEMENTS", 5 * 12 * 7)  # 7 cells per chunk
    chunked = up.fix_mixed(grid, logits, cells, U8, keep_values=True)
    assert len(chunked.values) > 10 and cells.sum() > 100
    a, b = np.argsort(chunked.index), np.argsort(whole.index)  # chunks order pixels anew
    np.testing.assert_array_equal(chunked.index[a], whole.index[b])
    np.testing.assert_array_equal(chunked.labels[a], whole.labels[b])
    np.testing.assert_array_equal(chunked.confidence()[a], whole.confidence()[b])


@pytest.mark.parametrize("out_hw", [(200, 300), (80, 96)])
def test_the_helper_thread_changes_nothing(out_hw):
    from concurrent.futures import ThreadPoolExecutor

    logits = smooth_logits(7, 80, 96, 2)
    grid = up.CellGrid((80, 96), out_hw) if out_hw != (80, 96) else None
    palette = up.pack_palette(np.random.default_rng(1).integers(0, 256, (7, 3), np.uint8))
    alone = post.FramePost(logits, grid, U8, palette, want_confidence=True)
    with ThreadPoolExecutor(max_workers=1) as helper:
        helped = post.FramePost(logits, grid, U8, palette, want_confidence=True, helper=helper)
        np.testing.assert_array_equal(helped.small, alone.small)
        np.testing.assert_array_equal(helped.best, alone.best)
        np.testing.assert_array_equal(helped.labels, alone.labels)
        np.testing.assert_array_equal(helped.colour_packed(), alone.colour_packed())
        np.testing.assert_array_equal(helped.confidence(), alone.confidence())
    np.testing.assert_array_equal(alone.small, np.argmax(logits, 0))


def test_every_output_pixel_of_a_mixed_cell_is_recomputed():
    # A checkerboard makes every cell mixed but the four beyond the frame's corners,
    # whose corners are four copies of one sample.
    logits = np.zeros((2, 6, 6), np.float32)
    logits[1] = (np.indices((6, 6)).sum(0) % 2) * 2.0 - 1.0
    grid = up.CellGrid((6, 6), (21, 17))
    fixed = up.fix_mixed(grid, logits, up.mixed_cells(up.argmax_classes(logits, U8)[0]), U8)
    row = np.floor((np.arange(21) + 0.5) * 6 / 21 - 0.5) + 1  # cell of each output row
    col = np.floor((np.arange(17) + 0.5) * 6 / 17 - 0.5) + 1
    outside = np.isin(row, (0, 6))[:, None] & np.isin(col, (0, 6))[None, :]
    assert sorted(fixed.index) == list(np.flatnonzero(~outside))
    ref = reference(logits, (21, 17))
    ok = decided(ref).reshape(-1)[fixed.index]  # a checkerboard has exact ties
    assert ok.mean() > 0.8
    np.testing.assert_array_equal(fixed.labels[ok],
                                  ref.argmax(0).numpy().reshape(-1)[fixed.index][ok])


@pytest.mark.parametrize("out_hw", [(75, 100), (24, 32), (13, 19)])
def test_device_ops_equal_cpu_on_the_same_logits(out_hw):
    logits = smooth_logits(6, 24, 32, 5)
    palette = np.random.default_rng(0).integers(0, 256, (6, 3), dtype=np.uint8)
    grid = up.CellGrid((24, 32), out_hw) if out_hw != (24, 32) else None
    cpu = post.FramePost(logits, grid, U8, up.pack_palette(palette), want_confidence=True)
    t = torch.from_numpy(logits)[None]
    dgrid = dev.DeviceGrid(grid, torch.device("cpu")) if grid is not None else None
    labels, small, mixed = dev.labels(dgrid, t)
    np.testing.assert_array_equal(labels.numpy(), cpu.labels)
    colour = dev.colour(dgrid, small, torch.from_numpy(palette), mixed).numpy()
    np.testing.assert_array_equal(colour, up.unpack_colour(cpu.colour_packed(), "rgb"))
    np.testing.assert_array_equal(colour, palette[cpu.labels])
    conf = dev.confidence(dgrid, t, mixed).numpy().astype(int)
    assert np.abs(conf - cpu.confidence()).max() <= 1


def test_device_ops_with_a_fixed_capacity_and_fp16_as_on_a_gpu():
    logits = smooth_logits(6, 24, 32, 5)
    grid = up.CellGrid((24, 32), (75, 100))
    cpu = post.FramePost(logits, grid, U8, np.zeros(6, np.uint32), want_confidence=True)
    count = int(up.mixed_cells(cpu.small).sum())
    t = torch.from_numpy(logits)[None]
    roomy = dev.DeviceGrid(grid, torch.device("cpu"), capacity=count + 5, work=torch.float16)
    labels, _, mixed = dev.labels(roomy, t)
    np.testing.assert_array_equal(labels.numpy(), cpu.labels)
    conf = dev.confidence(roomy, t, mixed).numpy().astype(int)
    assert np.abs(conf - cpu.confidence()).max() <= 1  # fp16 spreading
    # More mixed cells than one chunk holds: the further chunks keep every label exact
    # (a single fixed-size list used to leave the rest at their top-left label).
    tight = dev.DeviceGrid(grid, torch.device("cpu"), capacity=count // 2)
    np.testing.assert_array_equal(dev.labels(tight, t)[0].numpy(), cpu.labels)


def test_device_preprocess_resizes_like_torch_in_fp16_and_fp32():
    frame = np.random.default_rng(4).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    scale, bias = dev.normalisation_affine((0.4, 0.45, 0.5), (0.25, 0.2, 0.3))
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    ref = F.interpolate(x, size=(40, 64), mode="bilinear", align_corners=False)
    ref_in = (ref / 255 - torch.tensor([0.4, 0.45, 0.5]).view(1, 3, 1, 1)) / torch.tensor(
        [0.25, 0.2, 0.3]).view(1, 3, 1, 1)
    for work, tol in ((torch.float32, 1e-5), (torch.float16, 0.0625 / 255 / 0.2 + 1e-5)):
        net_in, small = dev.preprocess(torch.from_numpy(frame), (64, 40), scale, bias, "rgb",
                                       torch.float32, False, work)
        assert (net_in - ref_in).abs().max() <= tol
        assert (small.permute(2, 0, 1)[None].float() - ref).abs().max() <= 0.5 + 0.0625
        bgr_in, _ = dev.preprocess(torch.from_numpy(frame[:, :, ::-1].copy()), (64, 40), scale,
                                   bias, "bgr", torch.float32, False, work)
        torch.testing.assert_close(bgr_in, net_in)


# -- the bundled model on real CamVid frames --------------------------------------------
@pytest.fixture(scope="module")
def big_frames():
    files = sorted((CAMVID_ROOT / "val").glob("*.png"))[::50][:2] if CAMVID_ROOT.is_dir() \
        else []
    if not files:
        reason = f"no CamVid frames under {CAMVID_ROOT / 'val'} (set CANET_CAMVID_ROOT)"
        print(reason)
        pytest.skip(reason)
    return [np.ascontiguousarray(cv2.resize(cv2.imread(str(f)), (1920, 1200),
                                            interpolation=cv2.INTER_LINEAR)) for f in files]


@pytest.mark.parametrize("resolution", [(480, 360), (1024, 512)])
def test_agreement_with_the_reference_pipeline_at_1920x1200(big_frames, resolution,
                                                            cpu_loops):
    """The figures of docs/performance.md: the engine against today's reference pipeline.

    Reference: float resize of the frame, normalisation, the same ONNX Runtime forward,
    bilinear upsampling of the logits to 1920x1200, argmax / max softmax.
    """
    engine = SegmentationEngine("default", device="cpu", resolution=resolution)
    mean = torch.tensor(engine._mean).view(1, 3, 1, 1)
    std = torch.tensor(engine._std).view(1, 3, 1, 1)
    for bgr in big_frames:
        res = engine.infer(bgr, "bgr", confidence=True)
        x = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        x = F.interpolate(x, size=resolution[::-1], mode="bilinear", align_corners=False)
        logits = engine.run_model(((x - mean) / std).numpy())[0]
        ref = reference(logits, (1200, 1920))
        agree = float((res.labels == ref.argmax(0).numpy()).mean())
        diff = np.abs(res.confidence.astype(int) - np.rint(255 * ref.softmax(0).amax(0).numpy()))
        within = float((diff <= 2).mean())
        print(f"network {resolution}: labels agree {agree:.6f}, confidence within 2/255 "
              f"{within:.6f}, mean |d| {diff.mean():.4f}, max {diff.max()}")
        assert agree >= 0.9995  # measured 0.99999-1.0; the issue asks for 0.995
        assert within >= 0.9995 and diff.mean() < 0.1  # measured 0.99992-0.99994, ~0.03


@pytest.mark.parametrize("out_hw", [(1200, 1920), (480, 640)])
def test_bundled_model_logits_exact_up_to_ties(big_frames, out_hw):
    engine = SegmentationEngine("default", device="cpu")
    x = engine.prepare_model_input(np.ascontiguousarray(
        cv2.resize(big_frames[0], engine.resolution)[:, :, ::-1]))
    logits = np.array(engine.run_model(x)[0])
    labels, _ = post.labels_cpu(logits, out_hw, U8)
    ref = reference(logits, out_hw)
    ok = decided(ref)
    assert ok.mean() > 0.99
    assert not ((labels != ref.argmax(0).numpy()) & ok).any()


def test_grid_cache_keeps_the_last_few_and_makes_each_once():
    cache, made = up.GridCache(2), []

    def device_copy(cells):
        made.append(cells.out_hw)
        return ("device", cells)

    assert cache.get((64, 96), (64, 96)) is None  # same size: nothing to upsample
    a = cache.get((64, 96), (128, 192))
    assert isinstance(a, up.CellGrid) and (a.in_hw, a.out_hw) == ((64, 96), (128, 192))
    assert cache.get([64, 96], [128, 192]) is a  # lists and tuples are one key
    b = cache.get((64, 96), (128, 192), device_copy)  # a device copy is its own entry
    assert b[0] == "device" and cache.get((64, 96), (128, 192), device_copy) is b
    assert made == [(128, 192)]
    assert cache.get((64, 96), (128, 192)) is a  # a is now the most recent; b the oldest
    cache.get((64, 96), (50, 70))  # a third grid drops the least recently used: b
    assert cache.get((64, 96), (128, 192)) is a
    cache.get((64, 96), (128, 192), device_copy)
    assert made == [(128, 192), (128, 192)]

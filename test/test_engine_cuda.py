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

"""SegmentationEngine on CUDA.

Agreement with the CPU fp32 path, fp16, staging buffers, double buffering. Every test
skips where CUDA is absent.
"""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

# One plain-torch reference for both files; the CPU tests hold it.
from test_engine import MEAN, STD, reference_logits

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID, generic_class_set
from canet_ros.inference import EngineError, SegmentationEngine
from canet_ros.models import build_canet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (torch.cuda.is_available() is False)")

EPS = 1e-3
RES = (160, 128)
CAMVID_ROOT = Path(os.environ.get("CANET_CAMVID_ROOT")
                   or Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():  # larger logit gaps: see test_engine.seeded_model
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    meta = build_metadata("mobilenetv2", CAMVID, mean=MEAN, std=STD, input_size=RES)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "seeded.pt", model, meta), model


@pytest.fixture(scope="module")
def frames():
    """Two CamVid frames where available, else smooth synthetic scenes of the same size."""
    files = sorted((CAMVID_ROOT / "val").glob("*.png"))[:2] if CAMVID_ROOT.is_dir() else []
    if files:
        return [np.ascontiguousarray(cv2.imread(str(f))[:, :, ::-1]) for f in files]
    yy, xx = np.mgrid[0:360, 0:480]
    out = []
    for k in (1, 2):
        img = np.stack([(xx * k) % 256, (yy * k) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        out.append(cv2.GaussianBlur(img, (9, 9), 3))
    return out


def agreement(labels, logits, eps):
    """Fraction of decided pixels (top-2 gap > eps) whose label equals the reference's."""
    top2 = logits.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > eps).numpy()
    assert decided.mean() > 0.9, "too many near-ties for a meaningful comparison"
    return float((labels == logits.argmax(0).numpy())[decided].mean())


@pytest.mark.parametrize("cuda_graph", [True, False])
@pytest.mark.parametrize("output_size", ["input", "network"])
def test_fp32_labels_equal_cpu_fp32(checkpoint, frames, cuda_graph, output_size):
    gpu = SegmentationEngine(checkpoint[0], device="cuda", output_size=output_size,
                             cuda_graph=cuda_graph)
    cpu = SegmentationEngine(checkpoint[0], device="cpu", runtime="torch",
                             output_size=output_size)
    # A failed capture only logs a warning; without this the graph case could run eagerly.
    assert (gpu._runner._graph is not None) == cuda_graph
    for frame in frames:
        out_hw = frame.shape[:2] if output_size == "input" else RES[::-1]
        logits = reference_logits(checkpoint[1], frame, RES, out_hw)
        a, b = gpu.infer(frame).labels, cpu.infer(frame).labels
        assert a.shape == b.shape == out_hw and a.dtype == np.uint8
        assert agreement(b, logits, EPS) == 1.0
        # The GPU resizes the frame in fp16 (within 1/16 of a grey level): clear decisions
        # must all agree, and nearly all pixels.
        assert agreement(a, logits, 0.05) == 1.0
        assert (a == b).mean() > 0.999


def test_fp16_runs(checkpoint, frames):
    engine = SegmentationEngine(checkpoint[0], device="cuda", precision="fp16")
    assert engine.precision == "fp16" and engine._runner._graph is not None
    for frame in frames:
        res = engine.infer(frame, color=True, overlay=True, confidence=True)
        assert res.labels.shape == frame.shape[:2] and res.labels.dtype == np.uint8
        assert res.labels.max() < engine.num_classes
        assert res.color.shape == res.overlay.shape == frame.shape
        logits = reference_logits(checkpoint[1], frame, RES, frame.shape[:2])
        # fp16 moves logits by ~1e-2; compare only where the decision is clear.
        assert agreement(res.labels, logits, 0.5) > 0.99


def test_pinned_buffers_are_reused(checkpoint, frames):
    engine = SegmentationEngine(checkpoint[0], device="cuda")
    frame = frames[0]
    for _ in range(2):  # the two slots of this shape are used in turn: fill both
        engine.infer(frame, color=True, overlay=True)

    def buffers():
        slots = engine._pipeline._slots[frame.shape[:2]]
        return [b for s in slots for b in (s.host_in, *s.host_out.values())]

    assert len(buffers()) == 8 and all(b.is_pinned() for b in buffers())
    pointers = [b.data_ptr() for b in buffers()]
    allocations = engine._pipeline.pinned_allocations
    for _ in range(5):
        engine.infer(frame, color=True, overlay=True)
    assert [b.data_ptr() for b in buffers()] == pointers
    assert engine._pipeline.pinned_allocations == allocations


def test_async_double_buffering_equals_sync(checkpoint, frames):
    engine = SegmentationEngine(checkpoint[0], device="cuda")
    seq = [frames[i % 2] if i % 3 else np.ascontiguousarray(frames[i % 2][:, ::-1])
           for i in range(6)]
    flags = {"color": True, "overlay": True, "confidence": True}
    sync = [engine.infer(f, **flags) for f in seq]
    streamed = list(engine.infer_many(seq, **flags))
    handles = [engine.infer_async(f, **flags) for f in seq]  # > 2 in flight
    for s, m, h in zip(sync, streamed, handles, strict=True):
        for name in ("labels", "color", "overlay", "confidence"):
            np.testing.assert_array_equal(getattr(m, name), getattr(s, name))
            np.testing.assert_array_equal(getattr(h.result(), name), getattr(s, name))


def test_first_frame_under_callers_inference_mode(checkpoint, frames):
    engine = SegmentationEngine(checkpoint[0], device="cuda", warmup=False)
    frame = frames[0]
    with torch.inference_mode():  # the staging buffers for this shape are made here
        first = engine.infer(frame, color=True)
    for _ in range(2):  # then written in place outside inference mode, in both slots
        np.testing.assert_array_equal(engine.infer(frame, color=True).labels, first.labels)


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_colour_and_overlay_match_cpu(checkpoint, frames, order):
    gpu = SegmentationEngine(checkpoint[0], device="cuda")
    cpu = SegmentationEngine(checkpoint[0], device="cpu", runtime="torch")
    frame = frames[0] if order == "rgb" else np.ascontiguousarray(frames[0][:, :, ::-1])
    a = gpu.infer(frame, order, color=True, overlay=True, confidence=True)
    b = cpu.infer(frame, order, color=True, overlay=True, confidence=True)
    same = a.labels == b.labels
    assert same.mean() > 0.999
    np.testing.assert_array_equal(a.color[same], b.color[same])
    assert np.abs(a.overlay.astype(int) - b.overlay)[same].max() <= 1
    assert np.abs(a.confidence.astype(int) - b.confidence)[same].max() <= 2


@pytest.mark.parametrize("out_hw", [(1200, 1920), (96, 128), (50, 60)])
def test_device_ops_on_cuda_equal_the_cpu_frame_path(out_hw):
    from canet_ros.inference import device_ops as dev
    from canet_ros.inference import postprocess as post
    from canet_ros.inference import upsample as up

    rng = np.random.default_rng(0)
    coarse = rng.normal(0, 3, (11, 16, 22)).astype(np.float32)
    logits = np.stack([cv2.resize(p, (128, 96), interpolation=cv2.INTER_CUBIC) for p in coarse])
    palette = rng.integers(0, 256, (11, 3), dtype=np.uint8)
    grid = up.CellGrid((96, 128), out_hw) if out_hw != (96, 128) else None
    cpu = post.FramePost(logits, grid, np.dtype(np.uint8), up.pack_palette(palette),
                         want_confidence=True)
    device = torch.device("cuda")
    t = torch.from_numpy(logits)[None].to(device)
    dgrid = dev.DeviceGrid(grid, device) if grid is not None else None
    if grid is not None:  # noisy logits: ~40 % mixed cells, several chunks' worth
        assert dgrid.capacity is not None  # listed without a host sync
        assert up.mixed_cells(cpu.small).sum() > 2 * dgrid.capacity
    labels, small, mixed = dev.labels(dgrid, t)
    ref = torch.nn.functional.interpolate(torch.from_numpy(logits)[None], size=out_hw,
                                          mode="bilinear", align_corners=False)[0]
    top2 = ref.topk(2, 0).values
    decided = ((top2[0] - top2[1]) > 1e-4).numpy()
    assert not ((labels.cpu().numpy() != cpu.labels) & decided).any()
    colour = dev.colour(dgrid, small, torch.from_numpy(palette).to(device), mixed).cpu().numpy()
    same = labels.cpu().numpy() == cpu.labels
    np.testing.assert_array_equal(colour[same], palette[cpu.labels][same])
    conf = dev.confidence(dgrid, t, mixed).cpu().numpy().astype(int)
    assert np.abs(conf - cpu.confidence()).max() <= 1  # fp16 spreading: one grey level


def test_nothing_frame_sized_in_fp32(checkpoint):
    """A 1920x1200 frame costs under half the device memory its upsampled logits would.

    test_device_ops_overflow.py measures the same path on CPU tensors (38 MiB of 48).
    """
    engine = SegmentationEngine(checkpoint[0], device="cuda", resolution=(1024, 512))
    frame = np.random.default_rng(1).integers(0, 256, (1200, 1920, 3), dtype=np.uint8)
    engine.infer(frame, color=True, overlay=True, confidence=True)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    engine.infer(frame, color=True, overlay=True, confidence=True)
    torch.cuda.synchronize()
    upsampled_logits = engine.num_classes * 1200 * 1920 * 4
    assert torch.cuda.max_memory_allocated() - before < upsampled_logits / 2


def test_stage_times_come_from_cuda_events(checkpoint, frames):
    from canet_ros.inference.results import STAGES

    engine = SegmentationEngine(checkpoint[0], device="cuda")
    result, stages = engine.infer_timed(frames[0], "rgb", color=True, overlay=True,
                                        confidence=True)
    assert set(stages) == {*STAGES, "download"}
    assert all(v >= 0 for v in stages.values()) and stages["model"] > 0
    np.testing.assert_array_equal(result.labels, engine.infer(frames[0]).labels)


def test_uint16_labels_on_cuda():
    classes = generic_class_set(300)
    engine = SegmentationEngine(None, backbone="mobilenetv2", class_set=classes, device="cuda",
                                resolution=(64, 64), warmup=False)
    with torch.no_grad():
        engine.model.classifier.weight.zero_()
        engine.model.classifier.bias.zero_()
        engine.model.classifier.bias[299] = 10.0
    res = engine.infer(np.zeros((20, 30, 3), np.uint8), color=True)
    assert res.labels.dtype == np.uint16 and (res.labels == 299).all()
    assert (res.color == np.array(classes.colors[299], np.uint8)).all()


def test_auto_picks_cuda_and_ort_is_cpu_only(checkpoint):
    engine = SegmentationEngine(checkpoint[0], warmup=False)
    assert engine.device.type == "cuda" and engine.runtime == "torch"
    assert engine.device_name == torch.cuda.get_device_name(engine.device)
    with pytest.raises(EngineError, match="onnxruntime"):
        SegmentationEngine(checkpoint[0], device="cuda", runtime="onnxruntime")
    with pytest.raises(EngineError, match="device"):
        SegmentationEngine(checkpoint[0], device=f"cuda:{torch.cuda.device_count()}")

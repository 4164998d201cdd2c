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

"""The engine's CUDA branch end to end on the CPU, with CUDA's own calls stubbed out.

What runs for real: the engine's CUDA set-up (runner, ``DevicePath``, ``CudaPipeline``),
its warm-up (the memory-format choice), staging slots per frame shape and their reuse,
the device frame path in torch ops, handles, ``into``, ``infer_many`` and the stage
clock. What does not: streams, events and pinning are no-ops here, so ordering between
streams is not checked, and CUDA graphs are off. ``test_engine_cuda`` covers those on a GPU.
"""
import contextlib
import dataclasses
import types

import cv2
import numpy as np
import pytest
import torch
from test_engine import RES, seeded_model

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.inference import SegmentationEngine
from canet_ros.inference import torch_backend as tb
from canet_ros.inference.results import STAGES
from canet_ros.inference.runners import TorchRunner

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ALL = {"color": True, "overlay": True, "confidence": True}
# What the engine reads of a CUDA device; the tensors themselves stay on the CPU.
CUDA_DEVICE = types.SimpleNamespace(type="cuda", index=0)


class _Stream:
    def __init__(self, device=None):
        self.waits = 0

    def wait_event(self, event):
        self.waits += 1

    def wait_stream(self, stream):
        self.waits += 1


class _Event:
    def __init__(self, enable_timing=False):
        self.records = 0

    def record(self, stream=None):
        self.records += 1

    def synchronize(self):
        pass

    def query(self):
        return True

    def elapsed_time(self, end):
        return 0.5


@pytest.fixture
def stubbed_cuda(monkeypatch):
    """Send ``device="cuda"`` down the engine's CUDA branch, computing on the CPU."""
    real_load, real_empty = tb.load, torch.empty

    def load(checkpoint, backbone, class_set, device, precision, runtime, resolution):
        loaded = real_load(checkpoint, backbone, class_set, "cpu", precision, runtime,
                           resolution)
        if device != "cuda":
            return loaded
        return dataclasses.replace(loaded, device=CUDA_DEVICE, device_name="stub GPU")

    def cuda_runner(loaded):
        return TorchRunner(loaded.model, torch.device("cpu"), tb._DTYPES[loaded.precision],
                           channels_last=True)

    monkeypatch.setattr(tb, "load", load)
    monkeypatch.setattr(tb, "cuda_runner", cuda_runner)
    monkeypatch.setattr(torch.cuda, "Stream", _Stream)
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _Stream())
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, stream: None)
    monkeypatch.setattr(torch, "empty", lambda *a, pin_memory=False, **k: real_empty(*a, **k))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    meta = build_metadata("mobilenetv2", CAMVID, mean=(0.4, 0.45, 0.5), std=(0.25, 0.2, 0.3),
                          input_size=RES)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "seeded.pt", seeded_model(), meta)


@pytest.fixture(scope="module")
def frames():
    """Smooth synthetic scenes at 4:3, larger than the network input (so upsampled)."""
    yy, xx = np.mgrid[0:180, 0:240]
    out = []
    for k in (1, 2, 3):
        img = np.stack([(xx * k) % 256, (yy * k) % 256, (xx + yy * k) % 256], -1)
        out.append(cv2.GaussianBlur(img.astype(np.uint8), (9, 9), 3))
    return out


def assert_same(gpu, cpu):
    """Compare the device frame path with the CPU one, to test_engine's tolerances."""
    same = gpu.labels == cpu.labels
    assert gpu.labels.dtype == cpu.labels.dtype == np.uint8
    assert same.mean() > 0.999
    np.testing.assert_array_equal(gpu.color[same], cpu.color[same])
    assert np.abs(gpu.overlay.astype(int) - cpu.overlay)[same].max() <= 1
    assert np.abs(gpu.confidence.astype(int) - cpu.confidence).max() <= 1


@pytest.mark.parametrize("output_size", ["input", "network"])
def test_cuda_branch_matches_the_cpu_engine(stubbed_cuda, checkpoint, frames, output_size):
    gpu = SegmentationEngine(checkpoint, device="cuda", output_size=output_size,
                             cuda_graph=False)
    cpu = SegmentationEngine(checkpoint, device="cpu", runtime="torch",
                             output_size=output_size)
    assert (gpu.device_type, gpu.device_name, gpu.runtime, gpu.precision) == (
        "cuda", "stub GPU", "torch", "fp32")
    assert gpu._pipeline is not None and cpu._pipeline is None
    for frame in frames:
        for order in ("rgb", "bgr"):
            f = frame if order == "rgb" else np.ascontiguousarray(frame[..., ::-1])
            assert_same(gpu.infer(f, order, alpha=0.3, **ALL),
                        cpu.infer(f, order, alpha=0.3, **ALL))


def test_frames_in_flight_keep_their_own_results(stubbed_cuda, checkpoint, frames):
    """Three frames of one shape before any result: the third reuses the first's slot."""
    engine = SegmentationEngine(checkpoint, device="cuda", cuda_graph=False)
    expected = [engine.infer(f, **ALL) for f in frames]
    handles = [engine.infer_async(f, **ALL) for f in frames]
    streamed = list(engine.infer_many(frames + frames[::-1], **ALL))
    for want, handle in zip(expected, handles, strict=True):
        got = handle.result()
        for name in ("labels", "color", "overlay", "confidence"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    for want, got in zip(expected + expected[::-1], streamed, strict=True):
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.overlay, want.overlay)


def test_slots_and_buffers_are_made_once_per_shape(stubbed_cuda, checkpoint, frames):
    engine = SegmentationEngine(checkpoint, device="cuda", cuda_graph=False)
    pipeline = engine._pipeline
    # Warm-up ran all four outputs through both slots at the network size.
    assert list(pipeline._slots) == [RES[::-1]]
    assert pipeline.pinned_allocations == 2 * (1 + 4)
    for _ in range(3):
        engine.infer(frames[0], **ALL)
    assert list(pipeline._slots) == [RES[::-1], frames[0].shape[:2]]
    assert pipeline.pinned_allocations == 2 * 2 * (1 + 4)
    # 11 classes: labels travel as uint8, not as the int32 that wider label sets need.
    assert {s.host_out["labels"].dtype for s in pipeline._slots[frames[0].shape[:2]]} == {
        torch.uint8}
    buffers = [b.data_ptr() for s in pipeline._slots[frames[0].shape[:2]]
               for b in (s.host_in, *s.host_out.values())]
    for frame in frames:
        engine.infer(frame, **ALL)
    assert [b.data_ptr() for s in pipeline._slots[frames[0].shape[:2]]
            for b in (s.host_in, *s.host_out.values())] == buffers


def test_into_and_the_stage_clock(stubbed_cuda, checkpoint, frames):
    engine = SegmentationEngine(checkpoint, device="cuda", cuda_graph=False)
    frame = frames[1]
    into = {"labels": np.zeros(frame.shape[:2], np.uint8), "color": np.zeros_like(frame)}
    res = engine.infer(frame, color=True, into=into)
    assert res.labels is into["labels"] and res.color is into["color"]
    np.testing.assert_array_equal(into["labels"], engine.infer(frame).labels)
    # An overlay alone leaves a colour array handed in as it was; a Fortran one takes it.
    held, odd = np.full_like(frame, 9), np.asfortranarray(np.zeros_like(frame))
    res = engine.infer(frame, overlay=True, into={"color": held, "overlay": odd})
    assert res.color is None and (held == 9).all() and res.overlay is odd
    np.testing.assert_array_equal(odd, engine.infer(frame, overlay=True).overlay)
    # One frame in flight: each result is copied in when it is collected, not before.
    expected = [engine.infer(f, color=True).color for f in frames]
    for want, got in zip(expected, engine.infer_many(frames, color=True, into=into),
                         strict=True):
        assert got.color is into["color"]
        np.testing.assert_array_equal(got.color, want)
    _, times = engine.infer_timed(frame, **ALL)
    assert set(times) == set(STAGES) | {"download"}
    assert all(t == 0.5 for t in times.values())  # each stage is one pair of stub events
    x = engine.prepare_model_input()
    assert tuple(x.shape) == (1, 3, RES[1], RES[0])
    assert engine.run_model(x).shape == (1, CAMVID.num_classes, RES[1], RES[0])

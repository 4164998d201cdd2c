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

"""The CUDA frame path with a GPU's settings, on CPU tensors: busy frames and peak memory.

On a GPU, ``DeviceGrid`` lists mixed cells with a static size and works in fp16; here
the same grid runs on CPU tensors (its capacity read from a grid made for another
device, its work dtype fp16). A frame with more mixed cells than that capacity must
still come out as the CPU frame path makes it, and a 1920x1200 frame must stay under
the memory bound that docs/performance.md states for the frame path.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile

from canet_ros.classes import CAMVID
from canet_ros.inference import device_ops as dev
from canet_ros.inference import postprocess as post
from canet_ros.inference import upsample as up
from canet_ros.inference.results import Request
from canet_ros.inference.torch_backend import DevicePath

CPU = torch.device("cpu")


def gpu_like_grid(cells: up.CellGrid) -> dev.DeviceGrid:
    """Return the grid a GPU would use (its default capacity, fp16 work), on CPU tensors."""
    capacity = dev.DeviceGrid(cells, torch.device("meta")).capacity
    assert capacity is not None  # a device other than the CPU gets a static capacity
    return dev.DeviceGrid(cells, CPU, capacity=capacity, work=torch.float16)


def busy_logits(classes: int, coarse_hw: tuple[int, int], hw: tuple[int, int],
                seed: int = 0) -> np.ndarray:
    """Noisy logits (normal(0, 3) on a coarse grid, cubic-resized): ~40 % mixed cells."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 3, (classes, *coarse_hw)).astype(np.float32)
    return np.stack([cv2.resize(p, hw[::-1], interpolation=cv2.INTER_CUBIC) for p in coarse])


@pytest.mark.parametrize("out_hw", [(1200, 1920), (50, 60), (301, 97)])
def test_more_mixed_cells_than_the_gpu_capacity_are_all_exact(out_hw):
    logits = busy_logits(11, (16, 22), (96, 128))
    palette = np.random.default_rng(1).integers(0, 256, (11, 3), dtype=np.uint8)
    cells = up.CellGrid((96, 128), out_hw)
    cpu = post.FramePost(logits, cells, np.dtype(np.uint8), up.pack_palette(palette),
                         want_confidence=True)
    grid = gpu_like_grid(cells)
    mixed_count = int(up.mixed_cells(cpu.small).sum())  # the CPU path's own count
    assert mixed_count > 2 * grid.capacity  # the case under test: far past the capacity

    t = torch.from_numpy(logits)[None]
    labels, small, mixed = dev.labels(grid, t)
    labels = labels.numpy()
    # An independent reference: torch's bilinear upsampling, then argmax where decided.
    ref = F.interpolate(t, size=out_hw, mode="bilinear", align_corners=False)[0]
    top2 = ref.topk(2, 0).values
    decided = ((top2[0] - top2[1]) > 1e-4).numpy()
    np.testing.assert_array_equal(labels[decided], cpu.labels[decided])
    np.testing.assert_array_equal(labels[decided], ref.argmax(0).numpy()[decided])
    assert (labels == cpu.labels).mean() > 0.9999  # near-ties may round either way
    colour = dev.colour(grid, small, torch.from_numpy(palette), mixed).numpy()
    np.testing.assert_array_equal(colour, palette[labels])
    conf = dev.confidence(grid, t, mixed).numpy().astype(int)
    assert np.abs(conf - cpu.confidence()).max() <= 1  # fp16 spreading: one grey level


class StaticRunner:
    """A model whose output is a preallocated tensor, as a CUDA graph replay returns."""

    channels_last = True
    device = CPU

    def __init__(self, logits: torch.Tensor):
        self.logits, self.dtype = logits, logits.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def peak_bytes(fn, trace: Path) -> int:
    """Peak of the bytes allocated and not yet freed while ``fn`` runs (profiler events)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every allocation on this thread's timeline
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    finally:
        torch.set_num_threads(threads)
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text(encoding="utf-8"))["traceEvents"]
    live = peak = 0
    for event in sorted((e for e in events if e.get("name") == "[memory]"),
                        key=lambda e: e["ts"]):
        live += event["args"]["Bytes"]
        peak = max(peak, live)
    return peak


# A GPU's model gives channels_last logits where that format is faster, else NCHW; in
# fp32 or fp16 (precision="fp16").
@pytest.mark.parametrize("layout, dtype", [(torch.contiguous_format, torch.float32),
                                           (torch.channels_last, torch.float16)],
                         ids=["nchw-fp32", "channels_last-fp16"])
def test_frame_path_peak_memory_stays_under_the_documented_bound(monkeypatch, tmp_path,
                                                                 layout, dtype):
    """docs/performance.md: a 1920x1200 frame's extra memory < half its upsampled logits."""
    monkeypatch.setattr(dev, "_work_dtype", lambda device: torch.float16)  # as on CUDA
    classes, (height, width) = CAMVID.num_classes, (1200, 1920)
    coarse = np.random.default_rng(0).normal(0, 3, (1, classes, 16, 32)).astype(np.float32)
    logits = F.interpolate(torch.from_numpy(coarse), size=(512, 1024), mode="bilinear",
                           align_corners=False)
    grids = {}

    def grid(out_hw, make=None, in_hw=None):
        if tuple(out_hw) not in grids:  # made once, before the measured frame (a cache)
            grids[tuple(out_hw)] = gpu_like_grid(up.CellGrid((512, 1024), out_hw))
        return grids[tuple(out_hw)]

    logits = logits.to(dtype).contiguous(memory_format=layout)
    path = DevicePath(StaticRunner(logits), (1024, 512), (0.4, 0.45, 0.5),
                      (0.25, 0.2, 0.3), CAMVID.palette()[:classes], np.dtype(np.uint8),
                      tta=False, out_hw=tuple, grid=grid)
    frame = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (height, width, 3),
                                                               dtype=np.uint8))
    request = Request("rgb", True, True, True, 0.5)

    sizes = []

    def run():
        with torch.inference_mode():
            outs = path.compute(frame, request)
        assert set(outs) == {"labels", "color", "overlay", "confidence"}
        sizes.append(sum(t.numel() * t.element_size() for t in outs.values()))

    run()  # the grid tables, made once per frame size, are not the frame's
    peak = peak_bytes(run, tmp_path / "trace.json")
    assert peak >= sizes[-1]  # the profiler saw at least the outputs being made
    upsampled_logits = classes * height * width * 4
    assert peak < upsampled_logits / 2

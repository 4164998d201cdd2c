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

"""Flip test-time augmentation in the engine (offline tools only) against plain torch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_engine import (  # noqa: F401  (two of these are fixtures)
    MEAN,
    RES,
    STD,
    assert_labels_match,
    camvid_frames,  # noqa: F401  (a fixture)
    checkpoint,  # noqa: F401  (a fixture)
)
from torch.nn import functional as F

from canet_ros.inference import SegmentationEngine
from canet_ros.inference import postprocess as post

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tta_reference(model, frame_rgb, out_hw):
    """Mean softmax of the frame and its mirror (flipped back), in log form, upsampled."""
    width, height = RES
    x = torch.from_numpy(frame_rgb).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        p = (model(x).softmax(1) + model(x.flip(-1)).flip(-1).softmax(1)) / 2
    return F.interpolate(p.log(), size=out_hw, mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_tta_labels_equal_plain_torch(checkpoint, camvid_frames, runtime):  # noqa: F811
    path, model = checkpoint
    engine = SegmentationEngine(path, device="cpu", runtime=runtime, tta=True)
    plain = SegmentationEngine(path, device="cpu", runtime=runtime)
    changed = 0
    for frame in camvid_frames:
        result = engine.infer(frame, confidence=True)
        reference = tta_reference(model, frame, frame.shape[:2])
        assert_labels_match(result.labels, reference)
        changed += int((result.labels != plain.infer(frame).labels).sum())
    assert changed > 0  # the mirror did take part


def test_flip_tta_logits_by_hand():
    # Two classes, one row of two pixels; the mirrored run's logits come back flipped.
    a = np.array([[[0.0, 2.0]], [[0.0, 0.0]]], np.float32)   # softmax: (.5,.5), (.881,.119)
    b = np.array([[[0.0, 0.0]], [[0.0, 2.0]]], np.float32)   # flipped: pixel 0 gets (.119,.881)
    out = np.exp(post.flip_tta_logits(a, b))
    s = 1 / (1 + np.exp(-2.0))
    assert np.allclose(out[:, 0, 0], [(0.5 + 1 - s) / 2, (0.5 + s) / 2], atol=1e-6)
    assert np.allclose(out[:, 0, 1], [(s + 0.5) / 2, (1 - s + 0.5) / 2], atol=1e-6)
    assert np.allclose(out.sum(0), 1.0, atol=1e-6)


def test_segment_bag_tta_reports_it(tmp_path):
    from canet_ros.cli import main

    rc = main(["segment-bag", "sample", "--out", str(tmp_path / "out"), "--tta",
               "--device", "cpu", "--no-progress", "--resolution", "240x180"])
    assert rc == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model"]["tta"] is True and report["frames"] == 8

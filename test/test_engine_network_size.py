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


"""output_size="network" with a non-square network size: outputs are (H, W) of the network.

A (W, H) slip transposes the output shape; with a square size it would go unseen. The
labels are compared with a plain-torch forward at the network size.
"""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.inference import SegmentationEngine
from canet_ros.models import build_canet

MEAN, STD = (0.40, 0.45, 0.50), (0.25, 0.20, 0.30)
NETWORK = (64, 48)  # W, H

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():  # large logit gaps: the argmax is decided almost everywhere
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    meta = build_metadata("mobilenetv2", CAMVID, mean=MEAN, std=STD, input_size=NETWORK)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "seeded.pt", model, meta), model


def reference_logits(model, frame_rgb: np.ndarray) -> torch.Tensor:
    width, height = NETWORK
    x = torch.from_numpy(frame_rgb).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x)[0]


def test_network_output_size_is_height_by_width(seeded):
    path, model = seeded
    # No warm-up: it would run every output path before the shape could be asserted.
    engine = SegmentationEngine(path, device="cpu", runtime="torch", output_size="network",
                                warmup=False)
    assert engine.resolution == NETWORK
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:120]
    frame = np.clip(np.dstack([xx * 2, yy * 2, (xx + yy) % 80 * 3])
                    + rng.integers(0, 30, (90, 120, 3)), 0, 255).astype(np.uint8)
    labels = engine.infer(frame).labels
    assert labels.shape == (48, 64)
    logits = reference_logits(model, frame)
    top2 = logits.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > 1e-3).numpy()
    assert decided.mean() > 0.97
    assert (labels == logits.argmax(0).numpy())[decided].all()
    assert len(np.unique(labels)) >= 3  # a constant prediction would prove little
    res = engine.infer(frame, color=True, overlay=True, confidence=True)
    assert res.color.shape == res.overlay.shape == (48, 64, 3)
    assert res.confidence.shape == (48, 64)

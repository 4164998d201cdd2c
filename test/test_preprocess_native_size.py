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

"""Frames already at the network size: the CPU preprocessing's lookup-table path.

The engine tests compare with a torch reference that always resizes, so a frame of
exactly the network size (no resize; each byte goes through a per-channel table) is
checked here: the network input must be ``(x / 255 - mean) / std`` in RGB order,
worked out by hand, for frames given in RGB and in BGR order, and the labels must be
those of a plain torch forward on that input.
"""
import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from canet_ros.checkpoint import (
    build_metadata,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from canet_ros.classes import CAMVID
from canet_ros.inference import SegmentationEngine
from canet_ros.inference.preprocess import Preprocessor
from canet_ros.models import build_canet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEAN, STD = (0.40, 0.45, 0.50), (0.25, 0.20, 0.30)  # asymmetric: a channel slip shows
RES = (96, 64)  # (W, H)
EPS = 1e-3  # logit gap under which a label counts as a tie (float rounding may flip it)


def every_byte_rgb(width: int, height: int) -> np.ndarray:
    """Make an RGB frame in which each channel takes every byte value, differently per channel."""
    v = np.arange(width * height, dtype=np.int64).reshape(height, width)
    return np.stack([v % 256, (7 * v + 3) % 256, 255 - v % 256], axis=-1).astype(np.uint8)


def by_hand(rgb: np.ndarray, mean, std) -> np.ndarray:
    """(1, 3, H, W) float64: (x / 255 - mean) / std per RGB channel."""
    x = rgb.astype(np.float64) / 255.0
    x = (x - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    return x.transpose(2, 0, 1)[None]


def as_order(rgb: np.ndarray, order: str) -> np.ndarray:
    return rgb if order == "rgb" else np.ascontiguousarray(rgb[:, :, ::-1])


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_one_pixel_value_by_hand(order):
    # RGB (255, 0, 51): (1 - 0.40) / 0.25 = 2.4; (0 - 0.45) / 0.20 = -2.25;
    # (51/255 - 0.50) / 0.30 = (0.2 - 0.5) / 0.3 = -1.0
    rgb = np.empty((RES[1], RES[0], 3), np.uint8)
    rgb[:] = (255, 0, 51)
    out = Preprocessor(RES, MEAN, STD)(as_order(rgb, order), order)
    assert out.shape == (1, 3, RES[1], RES[0]) and out.dtype == np.float32
    for channel, want in enumerate((2.4, -2.25, -1.0)):
        np.testing.assert_allclose(out[0, channel], want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_every_byte_value_normalised_by_hand(order):
    rgb = every_byte_rgb(*RES)
    out = Preprocessor(RES, MEAN, STD)(as_order(rgb, order), order)
    np.testing.assert_allclose(out, by_hand(rgb, MEAN, STD), rtol=0, atol=1e-6)
    # The module promises bit-identical values to torch's float32 (x / 255 - mean) / std.
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    np.testing.assert_array_equal(out, x.numpy())


def test_bundled_checkpoint_input_at_network_size():
    """The bundled model's network input uses the mean/std its checkpoint records."""
    meta = read_checkpoint(resolve_checkpoint("default"))
    width, height = (int(v) for v in meta["input_size"])
    engine = SegmentationEngine("default", device="cpu", runtime="torch", warmup=False)
    assert engine.resolution == (width, height)
    rgb = every_byte_rgb(width, height)
    x = np.asarray(engine.prepare_model_input(rgb))
    np.testing.assert_allclose(x, by_hand(rgb, meta["mean"], meta["std"]), rtol=0, atol=1e-5)


# -- through the engine: labels of frames at the network size ------------------------------
@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():
        # Untrained logits nearly tie everywhere; a scaled classifier gives clear winners.
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    meta = build_metadata("mobilenetv2", CAMVID, mean=MEAN, std=STD, input_size=RES)
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "seeded.pt", model, meta)
    return path, model


def colour_picture(width: int, height: int) -> np.ndarray:
    """Smooth random colour regions plus noise: channel order changes what the model sees."""
    rng = np.random.default_rng(5)
    coarse = rng.integers(0, 256, (height // 16, width // 16, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    noisy = smooth + rng.normal(0, 12, smooth.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def reference_logits(model: torch.nn.Module, rgb: np.ndarray) -> torch.Tensor:
    """Plain torch at the network size: normalise by hand, forward, logits at frame size."""
    x = torch.from_numpy(by_hand(rgb, MEAN, STD)).float()
    with torch.no_grad():
        logits = model(x)
    return F.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0]


def test_rgb_and_bgr_frames_at_network_size_segment_alike(seeded):
    path, model = seeded
    engine = SegmentationEngine(path, device="cpu", runtime="torch", warmup=False)
    assert engine.resolution == RES
    rgb = colour_picture(*RES)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    from_rgb = engine.infer(rgb, "rgb").labels
    from_bgr = engine.infer(bgr, "bgr").labels
    swapped = engine.infer(bgr, "rgb").labels  # red and blue exchanged: another picture

    logits = reference_logits(model, rgb)
    top2 = logits.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > EPS).numpy()
    assert decided.mean() > 0.97, "too many near-ties for a meaningful comparison"
    want = logits.argmax(0).numpy()
    for labels in (from_rgb, from_bgr):
        assert labels.shape == rgb.shape[:2]
        assert not ((labels != want) & decided).any()
    np.testing.assert_array_equal(from_bgr, from_rgb)
    # The comparison could fail: the order does matter for this picture.
    assert (swapped != from_rgb).mean() > 0.05

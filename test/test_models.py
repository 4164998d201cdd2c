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

"""CANet model: shapes, gradients, attention blocks and the paper's Table 2 budgets."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import canet_ros.models as models
from canet_ros.models import BACKBONES, build_canet, count_macs, count_params
from canet_ros.models.backbones import SPECS
from canet_ros.models.blocks import FCA, ChannelAttention, SpatialAttention, SpatialBranch
from canet_ros.models.canet import _DECODER_WIDTHS

# Paper Table 2 at 1024x512 with 19 classes ("FLOPs" there are multiply-accumulates).
PAPER = {"mobilenetv2": (4.8e6, 18.5e9), "resnet18": (15.8e6, 38.7e9)}


@pytest.fixture(scope="module", params=BACKBONES)
def model(request):
    torch.manual_seed(0)
    return build_canet(request.param, 5)


class TestEveryBackbone:
    """One base test, reused for each context-branch variant."""

    @pytest.mark.parametrize("hw", [(97, 131), (64, 64), (33, 47)])
    def test_output_matches_input_size(self, model, hw):
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, *hw))
        assert out.shape == (1, 5, *hw)
        assert torch.isfinite(out).all()

    def test_backward_reaches_every_part(self, model):
        model.train()
        model.zero_grad()
        x = torch.randn(2, 3, 97, 131)
        target = torch.randint(0, 5, (2, 97, 131))
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        for part in (model.spatial, model.context, model.context_fusion, model.fca,
                     model.classifier):
            grads = [p.grad for p in part.parameters()]
            assert all(g is not None for g in grads)
            assert any(g.abs().sum() > 0 for g in grads)

    @pytest.mark.parametrize("hw", [(97, 131), (64, 96)])
    def test_backbone_gives_the_last_two_strides(self, model, hw):
        """Check ``low`` is the 1/16 stage and ``high`` the 1/32 one (paper 3.1, design.md).

        The decoder crops its deconvolutions to the skip feature's size, so a wrong stage
        still gives logits of the right size; only the feature maps themselves tell.
        """
        spec = SPECS[model.backbone_name]
        model.eval()
        with torch.no_grad():
            feats = model.context(torch.randn(1, 3, *hw))
        assert set(feats) == {"low", "high"}
        # Every stride-2 layer pads so that it rounds up: ceil(H / 2**k) at stride 2**k.
        h, w = hw
        low, high = feats["low"].shape, feats["high"].shape
        assert low == (1, spec.low_channels, math.ceil(h / 16), math.ceil(w / 16))
        assert high == (1, spec.high_channels, math.ceil(h / 32), math.ceil(w / 32))

    def test_backbone_head_is_dropped(self, model):
        names = [n for n, _ in model.context.named_modules()]
        assert not any(n.startswith(("fc", "classifier", "avgpool")) for n in names)
        if model.backbone_name == "mobilenetv2":
            assert "18" not in dict(model.context.named_children())  # the final 1x1 conv


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_has_its_public_builder(backbone):
    """Check ``canet_<name>`` exists, is exported, and builds that backbone's CANet."""
    builder = getattr(models, f"canet_{backbone}", None)
    assert builder is not None and f"canet_{backbone}" in models.__all__
    built = builder(3)
    assert (built.backbone_name, built.num_classes) == (backbone, 3)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_deconv_width_follows_the_documented_rule(backbone):
    """docs/design.md: half the 1/32 stage's channels, rounded down to 64s, at most 512."""
    half = SPECS[backbone].high_channels // 2
    assert _DECODER_WIDTHS[backbone][0] == min(512, half // 64 * 64)


@pytest.mark.parametrize("backbone", sorted(PAPER))
def test_params_and_macs_within_10_percent_of_paper(backbone):
    paper_params, paper_macs = PAPER[backbone]
    model = build_canet(backbone, 19)
    macs, shape = count_macs(model, 512, 1024)
    assert shape == (1, 19, 512, 1024)
    assert abs(count_params(model) / paper_params - 1) <= 0.10
    assert abs(macs / paper_macs - 1) <= 0.10


def test_count_macs_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    macs, shape = count_macs(conv, 10, 12)
    assert shape == (1, 8, 10, 12)
    assert macs == 8 * 10 * 12 * 3 * 9
    deconv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    macs, _ = count_macs(deconv, 5, 7, channels=4)
    assert macs == 5 * 7 * 4 * 6 * 9  # every input pixel meets every kernel tap
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    macs, _ = count_macs(dw, 6, 6, channels=4)
    assert macs == 6 * 6 * 4 * 9


def test_spatial_branch_is_paper_3_1():
    branch = SpatialBranch()
    convs = [m for m in branch.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].groups == 1 and convs[0].kernel_size == (3, 3)
    depthwise = [c for c in convs if c.groups > 1]
    assert [c.in_channels for c in depthwise] == [64, 128]
    assert all(c.stride == (2, 2) for c in convs if c.kernel_size == (3, 3))
    assert branch(torch.randn(1, 3, 64, 96)).shape == (1, 256, 8, 12)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in branch.modules()) == 3


def test_spatial_attention_is_one_channel_in_unit_interval():
    att = SpatialAttention(16).eval()
    m = att(torch.randn(2, 16, 9, 11) * 10)
    assert m.shape == (2, 1, 9, 11)
    assert (m >= 0).all() and (m <= 1).all()


def test_channel_attention_one_weight_per_channel_in_unit_interval():
    att = ChannelAttention(24, 32)
    w = att(torch.randn(3, 24, 5, 5) * 10)
    assert w.shape == (3, 32, 1, 1)
    assert (w >= 0).all() and (w <= 1).all()


def test_channel_attention_sums_avg_and_max_through_shared_fc():
    att = ChannelAttention(4, 4, reduction=1)
    x = torch.zeros(1, 4, 2, 2)
    x[0, :, 0, 0] = torch.tensor([4.0, 8.0, -4.0, 0.0])
    avg = torch.tensor([[1.0, 2.0, -1.0, 0.0]])
    mx = torch.tensor([[4.0, 8.0, 0.0, 0.0]])
    expected = torch.sigmoid(att.fc(avg) + att.fc(mx))
    assert torch.allclose(att(x).flatten(), expected.flatten(), atol=1e-6)


def test_fca_wiring():
    """Check out = refine(fused + (fused * spatial_map) * channel_weights)."""
    torch.manual_seed(1)
    fca = FCA(8, 6, 10).eval()
    s, c = torch.randn(1, 8, 7, 9), torch.randn(1, 6, 7, 9)
    with torch.no_grad():
        fused = fca.fuse(torch.cat([s, c], 1))
        sa = torch.sigmoid(fca.spatial_att.bn(fca.spatial_att.conv(s)))
        ca = torch.sigmoid(fca.channel_att.fc(c.mean((2, 3))) + fca.channel_att.fc(c.amax((2, 3))))
        expected = fca.refine(fused + fused * sa * ca[:, :, None, None])
        assert torch.allclose(fca(s, c), expected, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_canet("vgg16", 11)
    with pytest.raises(ValueError, match="num_classes"):
        build_canet("mobilenetv2", 0)


def hand_bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(C, h, w) -> (C, H, W): half-pixel centres, edges clamped (align_corners=False)."""

    def axis(n_out: int, n_in: int):
        pos = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = np.minimum(np.floor(pos).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    y0, y1, wy = axis(out_h, x.shape[1])
    x0, x1, wx = axis(out_w, x.shape[2])
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bottom = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def test_logits_are_the_classifier_output_upsampled_with_half_pixel_centres():
    torch.manual_seed(2)
    model = build_canet("mobilenetv2", 3).eval()
    seen = []
    model.classifier.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 44, 60))
    low = seen[0][0].double().numpy()
    assert low.shape == (3, 6, 8)  # 1/8 of 44x60, rounded up by the strided convs
    expected = hand_bilinear(low, 44, 60)
    assert np.allclose(out[0].double().numpy(), expected, rtol=1e-5, atol=1e-5)

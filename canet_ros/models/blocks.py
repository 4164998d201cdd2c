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

"""CANet building blocks: the spatial branch, context fusion and the FCA module.

Every free choice the paper leaves open is listed in docs/design.md.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1; one BN+ReLU after the pair (paper 3.1)."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class SpatialBranch(nn.Sequential):
    """Three stride-2 layers, 64/128/256 channels: output at 1/8 of the input."""

    def __init__(self, in_channels: int = 3, channels: Tuple[int, int, int] = (64, 128, 256)):
        c1, c2, c3 = channels
        super().__init__(
            ConvBNReLU(in_channels, c1, 3, stride=2),
            SeparableConvBNReLU(c1, c2),
            SeparableConvBNReLU(c2, c3),
        )
        self.out_channels = c3


class Deconv(nn.Module):
    """Stride-2 3x3 transposed conv + BN + ReLU that lands on an exact target size.

    A 3x3 kernel with padding 1 reaches both 2n-1 and 2n, so it matches the skip feature
    for odd input sizes too (2x2 or 4x4 kernels cannot). It always computes 2n (output
    padding 1) and crops: output padding only appends the last row and column, so the crop
    equals the 2n-1 result, and unlike ``output_size`` the crop stays a function of the
    input shape in an exported graph (ONNX with dynamic height and width).
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1,
                                         bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        y = self.deconv(x)[..., : size[0], : size[1]]
        return self.relu(self.bn(y))


class ContextFusion(nn.Module):
    """1/32 deconvolved to 1/16, concatenated with the 1/16 stage, deconvolved to 1/8."""

    def __init__(self, low_channels: int, high_channels: int, mid_channels: int,
                 out_channels: int):
        super().__init__()
        self.up32 = Deconv(high_channels, mid_channels)
        self.up16 = Deconv(mid_channels + low_channels, out_channels)
        self.out_channels = out_channels

    def forward(self, low: torch.Tensor, high: torch.Tensor,
                size8: Tuple[int, int]) -> torch.Tensor:
        x = self.up32(high, tuple(low.shape[-2:]))
        return self.up16(torch.cat([x, low], dim=1), size8)


class SpatialAttention(nn.Module):
    """3x3 conv + BN + sigmoid on the spatial-branch features: one map in [0, 1]."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, spatial: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.bn(self.conv(spatial)))


class ChannelAttention(nn.Module):
    """Avg- and max-pooled context vectors through one shared FC stack, summed, sigmoid."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(out_channels // reduction, 8)
        self.fc = nn.Sequential(
            nn.Linear(in_channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_channels, bias=False),
        )

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        avg = self.fc(context.mean(dim=(2, 3)))
        mx = self.fc(context.amax(dim=(2, 3)))
        return torch.sigmoid(avg + mx)[:, :, None, None]


class FCA(nn.Module):
    """Feature Cross Attention (paper 3.2, Fig. 1): spatial then channel attention."""

    def __init__(self, spatial_channels: int, context_channels: int, channels: int,
                 reduction: int = 4):
        super().__init__()
        self.fuse = ConvBNReLU(spatial_channels + context_channels, channels)
        self.spatial_att = SpatialAttention(spatial_channels)
        self.channel_att = ChannelAttention(context_channels, channels, reduction)
        self.refine = ConvBNReLU(channels, channels)
        self.out_channels = channels

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([spatial, context], dim=1))
        s = fused * self.spatial_att(spatial)
        out = fused + s * self.channel_att(context)
        return self.refine(out)


def upsample_to(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

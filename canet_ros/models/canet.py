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

"""CANet (Liu & Yin, ICIP 2019): spatial branch + context branch + FCA module."""
from __future__ import annotations

import operator
from typing import Any, Dict

import torch
from torch import nn

from .backbones import PretrainedArg, build_backbone, get_spec
from .blocks import FCA, ContextFusion, SpatialBranch, upsample_to

__all__ = ["CANet", "build_canet", "canet_mobilenetv2", "canet_resnet18", "canet_resnet101"]

# Decoder widths per backbone: (1/16 deconv width, 1/8 context width, FCA width).
# Chosen so CANet1/CANet2 land on the paper's Table 2 budgets; see docs/design.md.
_DECODER_WIDTHS: Dict[str, tuple] = {
    "mobilenetv2": (128, 256, 256),
    "resnet18": (256, 256, 256),
    "resnet101": (512, 256, 256),
}


class CANet(nn.Module):
    """Cross Attention Network. Logits always come out at the input's height and width."""

    def __init__(self, backbone: nn.Module, backbone_name: str, low_channels: int,
                 high_channels: int, num_classes: int, widths: tuple):
        super().__init__()
        mid, ctx, fca = widths
        self.backbone_name = backbone_name
        self.num_classes = num_classes
        self.spatial = SpatialBranch()
        self.context = backbone
        self.context_fusion = ContextFusion(low_channels, high_channels, mid, ctx)
        self.fca = FCA(self.spatial.out_channels, ctx, fca)
        self.classifier = nn.Conv2d(fca, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        spatial = self.spatial(x)
        feats = self.context(x)
        context = self.context_fusion(feats["low"], feats["high"], tuple(spatial.shape[-2:]))
        logits = self.classifier(self.fca(spatial, context))
        return upsample_to(logits, tuple(size))


def _class_count(num_classes: Any) -> int:
    """Return ``num_classes`` as an int; any integral number (numpy, torch) is one."""
    # A bool is an int to Python (and a torch bool tensor has __index__), but no count.
    try:
        count = (None if isinstance(num_classes, bool) or "bool" in str(getattr(
            num_classes, "dtype", "")) else operator.index(num_classes))
    except TypeError:  # 11.0, "11", a tensor of several values
        count = None
    if count is None or count < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return count


def _canet(backbone: str, num_classes: Any, pretrained_backbone: PretrainedArg) -> CANet:
    num_classes = _class_count(num_classes)
    spec = get_spec(backbone)
    body = build_backbone(backbone, pretrained_backbone)
    return CANet(body, backbone, spec.low_channels, spec.high_channels, num_classes,
                 _DECODER_WIDTHS[backbone])


def build_canet(backbone: str, num_classes: int, *,
                pretrained_backbone: PretrainedArg = False) -> CANet:
    """Build CANet with a MobileNetV2, ResNet18 or ResNet101 context branch (CANet1/2/3).

    ``pretrained_backbone``: False, True (torchvision ImageNet weights from the torch
    hub cache or the network), a path to a torchvision-format backbone state_dict, or such
    a state_dict (``models.backbones.load_backbone_weights`` reads and checks one early).
    Weights of another model are refused (BackboneWeightsError, one line naming the file).
    """
    return _canet(backbone, num_classes, pretrained_backbone)


def canet_mobilenetv2(num_classes: int, **kwargs) -> CANet:
    return build_canet("mobilenetv2", num_classes, **kwargs)


def canet_resnet18(num_classes: int, **kwargs) -> CANet:
    return build_canet("resnet18", num_classes, **kwargs)


def canet_resnet101(num_classes: int, **kwargs) -> CANet:
    return build_canet("resnet101", num_classes, **kwargs)

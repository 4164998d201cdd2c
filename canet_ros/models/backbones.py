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

"""Context-branch backbones: torchvision models wrapped, never copied.

Each backbone is a torchvision classifier whose head (and, for MobileNetV2,
the final 1x1 conv the paper discards) is cut off by an intermediate-layer
getter that returns the last two stages: ``low`` at 1/16 and ``high`` at 1/32.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Callable, Dict, Union

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models._utils import IntermediateLayerGetter

PretrainedArg = Union[bool, str, os.PathLike]


class BackboneWeightsError(RuntimeError):
    """ImageNet weights were asked for but cannot be had."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    builder: Callable[..., nn.Module]
    weights_enum: Callable[[], object]
    body: Callable[[nn.Module], nn.Module]  # the part the getter walks
    return_layers: Dict[str, str]
    low_channels: int   # 1/16 stage
    high_channels: int  # 1/32 stage


def _mbv2_body(model: nn.Module) -> nn.Module:
    return model.features


def _resnet_body(model: nn.Module) -> nn.Module:
    return model


SPECS: Dict[str, BackboneSpec] = {
    # features[13] ends the 96-channel stride-16 stage, features[17] the
    # 320-channel stride-32 stage; features[18] (1x1 conv to 1280) is dropped.
    "mobilenetv2": BackboneSpec(
        "mobilenetv2", tvm.mobilenet_v2, lambda: tvm.MobileNet_V2_Weights.IMAGENET1K_V1,
        _mbv2_body, {"13": "low", "17": "high"}, 96, 320),
    "resnet18": BackboneSpec(
        "resnet18", tvm.resnet18, lambda: tvm.ResNet18_Weights.IMAGENET1K_V1,
        _resnet_body, {"layer3": "low", "layer4": "high"}, 256, 512),
    "resnet101": BackboneSpec(
        "resnet101", tvm.resnet101, lambda: tvm.ResNet101_Weights.IMAGENET1K_V1,
        _resnet_body, {"layer3": "low", "layer4": "high"}, 1024, 2048),
}

BACKBONES = tuple(SPECS)


def get_spec(name: str) -> BackboneSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}") from None


def _load_torchvision_weights(spec: BackboneSpec, model: nn.Module) -> None:
    weights = spec.weights_enum()
    try:
        # torch.hub looks in its cache (TORCH_HOME) before it tries the network.
        # weights_only: torch.hub's default is False, and its cache is just a folder.
        state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu",
                                                   progress=False, weights_only=True)
    except pickle.UnpicklingError:
        name = weights.url.rsplit("/", 1)[-1]
        path = os.path.join(torch.hub.get_dir(), "checkpoints", name)
        raise BackboneWeightsError(
            f"{path}: refused, it holds pickled Python objects, not only weights; "
            f"replace it with torchvision's original file") from None
    except Exception as exc:  # offline: URLError, socket errors, partial files
        cache = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise BackboneWeightsError(
            f"ImageNet weights for {spec.name} ({weights.url.rsplit('/', 1)[-1]}) are not in "
            f"the torch hub cache ({cache}) and could not be downloaded ({exc}). Copy the file "
            f"there, or pass pretrained_backbone=<path to a .pth state_dict>.") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # another model's file under this file's name
        path = os.path.join(torch.hub.get_dir(), "checkpoints", weights.url.rsplit("/", 1)[-1])
        first = " ".join(str(exc).strip().splitlines()[:2])[:300]
        raise BackboneWeightsError(f"{path}: not torchvision's {spec.name} weights ({first}); "
                                   f"replace it with the original file") from None


def _load_file_weights(spec: BackboneSpec, model: nn.Module, path: str) -> None:
    if not os.path.isfile(path):
        raise BackboneWeightsError(f"{path}: backbone weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneWeightsError(f"{path}: not a readable torch state_dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"{path}: expected a state_dict, found {type(state).__name__}")
    # Heads (classifier / fc) may be absent or differ: only the body must match. Files from
    # before torch 0.4.1 lack BatchNorm's num_batches_tracked, which is not a learnt tensor
    # (torchvision's own loader fills it in too).
    body_keys = {k for k in model.state_dict() if not k.startswith(("classifier.", "fc."))}
    missing = sorted(k for k in body_keys - set(state)
                     if not k.endswith("num_batches_tracked"))
    if missing:
        raise BackboneWeightsError(
            f"{path}: not {spec.name} weights; {len(missing)} backbone tensors missing, "
            f"e.g. {missing[:3]}")
    body_state = {k: v for k, v in state.items() if k in body_keys}
    try:
        model.load_state_dict(body_state, strict=False)
    except RuntimeError as exc:
        raise BackboneWeightsError(f"{path}: shapes do not fit {spec.name}: {exc}") from exc


def build_backbone(name: str, pretrained: PretrainedArg = False) -> nn.Module:
    """Build the context-branch body, which returns ``{"low": 1/16, "high": 1/32}`` features."""
    spec = get_spec(name)
    model = spec.builder(weights=None)
    if pretrained is True:
        _load_torchvision_weights(spec, model)
    elif pretrained not in (False, None):
        _load_file_weights(spec, model, os.fspath(pretrained))
    return IntermediateLayerGetter(spec.body(model), return_layers=dict(spec.return_layers))

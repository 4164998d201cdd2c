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
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models._utils import IntermediateLayerGetter

from ..errors import BackboneWeightsError

__all__ = ["BACKBONES", "BackboneSpec", "BackboneWeightsError", "PretrainedArg", "SPECS",
           "build_backbone", "get_spec", "load_backbone_weights"]

# False/None: random init; True: torchvision's ImageNet file (torch hub cache or network);
# a path: a torchvision-format .pth; a mapping: such a state_dict already in memory.
PretrainedArg = Union[None, bool, str, os.PathLike, Mapping[str, Any]]

# How to give a file instead, in the spellings a user can type.
_FILE_ADVICE = ("--pretrained-backbone FILE (in a --config YAML: pretrained_backbone: FILE; "
                "in Python: pretrained_backbone='FILE')")
_HEADS = ("classifier.", "fc.")  # the ImageNet classifier, which CANet does not use


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


def _brief(exc: BaseException) -> str:
    """Return an error's first line, without the terminal colour codes torch puts in some."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _damaged(path: str, exc: BaseException) -> bool:
    """Whether a torch file that failed to load was cut short (an interrupted copy)."""
    if isinstance(exc, EOFError) or "EOF" in str(exc):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    # torch.save writes a zip archive; cut short, it loses the directory at its end.
    return head == b"PK\x03\x04" and not zipfile.is_zipfile(path)


def _read_file(path: str, hub_url: Optional[str] = None) -> Any:
    """Load ``path`` with ``torch.load(weights_only=True)``; each failure is one plain line.

    torch's own message suggests loading with weights_only=False, which runs whatever code
    the file holds: that advice must never reach a user, so it is not passed on.
    """
    from ..warning_filters import quiet_warnings  # thread-safe catch_warnings

    try:
        with quiet_warnings():  # pickle-protocol notes: noise for a user
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        pickled = "Unsupported global" in str(exc)  # a class or function, not only tensors
        problem = ("refused, it holds pickled Python objects (such as a whole model), not "
                   "only weights" if pickled else "not a readable torch file")
        fix = "; save the model's state_dict() instead" if pickled else ""
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, ...
        problem = ("damaged or truncated, not a readable torch file" if _damaged(path, exc)
                   else f"not a readable torch file ({_brief(exc)})")
        fix = ""
    if hub_url:
        fix = (f"; replace it with torchvision's original file ({hub_url}), or delete it to "
               f"download that again")
    raise BackboneWeightsError(f"{path}: {problem}{fix}")


def _torchvision_state(spec: BackboneSpec) -> Tuple[Any, str]:
    """Return torchvision's ImageNet state_dict (hub cache, else the network) and its path."""
    url = spec.weights_enum().url
    cache = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(cache, os.path.basename(urlparse(url).path))  # torch.hub's own name
    if os.path.isfile(path):  # read here, so that a damaged copy is named as such
        return _read_file(path, url), path
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False,
                                                   check_hash=True, weights_only=True)
    except Exception as exc:  # offline: URLError, socket errors; a download that is not it
        if os.path.isfile(path):  # downloaded, but torch.load refused it
            return _read_file(path, url), path
        raise BackboneWeightsError(
            f"ImageNet weights for {spec.name} ({os.path.basename(path)}) are not in the torch "
            f"hub cache ({cache}) and could not be downloaded ({_brief(exc)}); copy "
            f"torchvision's file there, or give a weights file: {_FILE_ADVICE}") from exc
    return state, path


def _weights_file(pretrained: Union[str, os.PathLike]) -> str:
    path = os.fspath(pretrained)
    if not path:
        raise BackboneWeightsError("pretrained_backbone: an empty path; give the weights file")
    if os.path.isdir(path):
        raise BackboneWeightsError(f"{path}: a folder, not a backbone weights file")
    if not os.path.isfile(path):
        raise BackboneWeightsError(f"{path}: backbone weights file not found")
    return path


# ResNet depth by blocks per stage and block kind (He et al. 2016, Table 1; torchvision's
# resnet18..152): files of two depths share names, so a key count alone cannot tell them.
_RESNETS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
            ((3, 4, 6, 3), True): "resnet50", ((3, 4, 23, 3), True): "resnet101",
            ((3, 8, 36, 3), True): "resnet152"}
_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(conv\d)\.")


def _resnet_like(keys: Any) -> Optional[str]:
    """Return the torchvision ResNet whose tensor names ``keys`` are, if any."""
    blocks = [0, 0, 0, 0]
    bottleneck = False
    for key in keys:
        match = _BLOCK.match(str(key))
        if match:
            stage = int(match.group(1)) - 1
            blocks[stage] = max(blocks[stage], int(match.group(2)) + 1)
            bottleneck |= match.group(3) == "conv3"
    return _RESNETS.get((tuple(blocks), bottleneck))


def _without_ddp_prefix(state: Mapping[str, Any]) -> Mapping[str, Any]:
    # DistributedDataParallel's state_dict() puts "module." before every name. torchvision's
    # names never start with it, so a prefix on every name is unambiguous: it is taken off.
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _tensors(count: int, kind: str) -> str:
    return f"{count} {kind} tensor{'s' * (count != 1)}"


def _checked(spec: BackboneSpec, state: Any, reference: nn.Module, where: str, what: str,
             fix: str) -> Dict[str, torch.Tensor]:
    """Return the backbone's tensors from ``state``; refuse another model's weights."""
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise BackboneWeightsError(f"{where}: expected a state_dict, found "
                                   f"{type(state).__name__}")
    state = _without_ddp_prefix(state)
    shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    body = [k for k in shapes if not k.startswith(_HEADS)]
    # The ImageNet head may be absent or another; files from before torch 0.4.1 lack
    # BatchNorm's num_batches_tracked, a counter (torchvision's own loader fills it in).
    missing = [k for k in body if k not in state and not k.endswith("num_batches_tracked")]
    # Any other name is another model's, e.g. a deeper ResNet's extra blocks.
    extra = [k for k in state if k not in shapes and not str(k).startswith(_HEADS)]
    if missing or extra:
        like = _resnet_like(state)
        counts = ([f"{_tensors(len(missing), spec.name)} missing, e.g. {missing[0]}"]
                  if missing else [])
        counts += [f"{_tensors(len(extra), 'unexpected')}, e.g. {extra[0]}"] if extra else []
        held = f": it holds {like}-like weights" if like and like != spec.name else ""
        raise BackboneWeightsError(f"{where}: not {what} weights{held} ({'; '.join(counts)})"
                                   f"{fix}")
    odd = [k for k in body if k in state and (not isinstance(state[k], torch.Tensor)
                                              or tuple(state[k].shape) != shapes[k])]
    if odd:
        found = getattr(state[odd[0]], "shape", type(state[odd[0]]).__name__)
        raise BackboneWeightsError(
            f"{where}: not {what} weights ({_tensors(len(odd), 'mis-shaped')}, e.g. {odd[0]} "
            f"{list(found) if isinstance(found, torch.Size) else found} where {spec.name} has "
            f"{list(shapes[odd[0]])}){fix}")
    return {k: state[k] for k in body if k in state}


def _load(spec: BackboneSpec, pretrained: PretrainedArg,
          reference: nn.Module) -> Optional[Dict[str, torch.Tensor]]:
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        state, where = _torchvision_state(spec)
        what, fix = f"torchvision's {spec.name}", "; replace it with the original file"
    elif isinstance(pretrained, Mapping):
        state, where, what, fix = pretrained, "pretrained_backbone", spec.name, ""
    elif isinstance(pretrained, (str, os.PathLike)):
        where = _weights_file(pretrained)
        state, what, fix = _read_file(where), spec.name, ""
    else:
        raise TypeError(f"pretrained_backbone must be True, False, a file path or a "
                        f"state_dict, got {pretrained!r}")
    return _checked(spec, state, reference, where, what, fix)


def load_backbone_weights(name: str,
                          pretrained: PretrainedArg) -> Optional[Dict[str, torch.Tensor]]:
    """Read and check ``pretrained`` (as build_backbone takes it) without building the model.

    Returns the backbone's tensors, None for no weights; raises BackboneWeightsError (one line
    naming the file) where they cannot be had. A caller checks early with this and passes
    the result on to build_backbone / build_canet.
    """
    spec = get_spec(name)
    if pretrained is None or pretrained is False:
        return None
    with torch.device("meta"):  # names and shapes only: no memory, no weights to fill
        reference = spec.builder(weights=None)
    return _load(spec, pretrained, reference)


def build_backbone(name: str, pretrained: PretrainedArg = False) -> nn.Module:
    """Build the context-branch body, which returns ``{"low": 1/16, "high": 1/32}`` features."""
    spec = get_spec(name)
    model = spec.builder(weights=None)
    state = _load(spec, pretrained, model)
    if state is not None:  # checked: only the ImageNet head and BatchNorm counters may lack
        model.load_state_dict(state, strict=False)
    return IntermediateLayerGetter(spec.body(model), return_layers=dict(spec.return_layers))

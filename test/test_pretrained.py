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

"""ImageNet backbone weights: from torchvision (where present) or from a file."""
import urllib.error

import pytest
import torch
import torchvision

from canet_ros.models import BackboneWeightsError, build_canet


def test_torchvision_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(BackboneWeightsError, match="mobilenet_v2-b0353104.pth.*torch hub cache"):
        build_canet("mobilenetv2", 11, pretrained_backbone=True)


def test_torchvision_weights_from_hub_cache(monkeypatch, tmp_path):
    """A user who copied torchvision's file into the hub cache gets it, with no network."""
    torch.manual_seed(3)
    ref = torchvision.models.resnet18().state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref, cache / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = build_canet("resnet18", 11, pretrained_backbone=True)
    assert torch.equal(model.context.layer4[1].conv2.weight, ref["layer4.1.conv2.weight"])


def test_another_models_file_in_the_hub_cache_is_named(tmp_path, monkeypatch):
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    # mobilenet_v2's weights under resnet18's file name: keys and shapes do not fit.
    torch.save(torchvision.models.mobilenet_v2().state_dict(), cache / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackboneWeightsError, match="resnet18-f37072fd.pth: not torchvision's "
                                                   "resnet18 weights"):
        build_canet("resnet18", 11, pretrained_backbone=True)


def test_weights_from_file(tmp_path):
    torch.manual_seed(7)
    ref = torchvision.models.mobilenet_v2().state_dict()
    path = tmp_path / "mbv2.pth"
    torch.save(ref, path)
    model = build_canet("mobilenetv2", 11, pretrained_backbone=str(path))
    assert torch.equal(model.context["17"].conv[0][0].weight, ref["features.17.conv.0.0.weight"])
    assert torch.equal(model.context["0"][1].running_var, ref["features.0.1.running_var"])


def test_weights_file_from_before_num_batches_tracked(tmp_path):
    """Old files (torch < 0.4.1) lack the BatchNorm counters; torchvision loads them, so do we."""
    torch.manual_seed(8)
    ref = {k: v for k, v in torchvision.models.resnet18().state_dict().items()
           if not k.endswith("num_batches_tracked")}
    torchvision.models.resnet18().load_state_dict(ref)  # the peer library accepts it
    path = tmp_path / "old_resnet18.pth"
    torch.save(ref, path)
    model = build_canet("resnet18", 11, pretrained_backbone=str(path))
    assert torch.equal(model.context.layer4[1].conv2.weight, ref["layer4.1.conv2.weight"])
    assert torch.equal(model.context.bn1.running_mean, ref["bn1.running_mean"])


def test_weights_file_problems_name_the_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(BackboneWeightsError, match="nope.pth.*not found"):
        build_canet("mobilenetv2", 11, pretrained_backbone=missing)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(BackboneWeightsError, match="junk.pth.*not a readable"):
        build_canet("mobilenetv2", 11, pretrained_backbone=junk)
    other = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    with pytest.raises(BackboneWeightsError, match="resnet.pth.*not mobilenetv2 weights"):
        build_canet("mobilenetv2", 11, pretrained_backbone=other)

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

"""ImageNet backbone files a user may hold, and ``canet train --pretrained-backbone [FILE]``.

The wrong file, a damaged one, a DDP one; the flag, a config file's key and a resume.

No test needs torchvision's real ImageNet files (they cannot be downloaded here): the files
are torchvision's own architectures with random or placeholder values, under its names.
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from test_training import make_camvid_tree
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.models import BackboneWeightsError, build_canet

MBV2_FILE = os.path.basename(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url)
HEADS = ("fc.", "classifier.")


def _names_and_shapes(arch: str) -> dict:
    with torch.device("meta"):  # torchvision's names and shapes, no memory
        return {k: tuple(v.shape) for k, v in
                getattr(torchvision.models, arch)(weights=None).state_dict().items()}


def _placeholder_file(path: Path, arch: str) -> Path:
    """Save a state_dict of ``arch``'s names and shapes whose values take no space."""
    zero = torch.zeros(())
    torch.save({k: zero.expand(shape) for k, shape in _names_and_shapes(arch).items()}, path)
    return path


@pytest.mark.parametrize("backbone, arch", [("resnet18", "resnet34"),
                                            ("resnet101", "resnet152")])
def test_a_deeper_resnets_file_is_refused_not_truncated(tmp_path, backbone, arch):
    # Same names as far as they go; the deeper model has more blocks per stage. The peer,
    # torchvision's own strict load_state_dict, refuses such a file too.
    path = _placeholder_file(tmp_path / f"{arch}.pth", arch)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        getattr(torchvision.models, backbone)().load_state_dict(torch.load(path))
    ours = _names_and_shapes(backbone)
    extra = [k for k in _names_and_shapes(arch) if k not in ours and not k.startswith(HEADS)]
    with pytest.raises(BackboneWeightsError) as info:
        build_canet(backbone, 11, pretrained_backbone=str(path))
    assert str(info.value) == (f"{path}: not {backbone} weights: it holds {arch}-like weights "
                               f"({len(extra)} unexpected tensors, e.g. {extra[0]})")


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101",
                                  "resnet152"])
def test_a_resnet_file_is_named_by_its_depth(tmp_path, arch):
    path = _placeholder_file(tmp_path / "weights.pth", arch)
    with pytest.raises(BackboneWeightsError, match=f"not mobilenetv2 weights: it holds "
                                                   f"{arch}-like weights"):
        build_canet("mobilenetv2", 11, pretrained_backbone=str(path))


def test_another_imagenet_head_is_no_reason_to_refuse(tmp_path):
    # The head is cut off, so a file fine-tuned to 10 classes is still the backbone's.
    torch.manual_seed(5)
    ref = torchvision.models.resnet18(num_classes=10).state_dict()
    torch.save(ref, tmp_path / "r18_10.pth")
    model = build_canet("resnet18", 11, pretrained_backbone=str(tmp_path / "r18_10.pth"))
    assert torch.equal(model.context.layer2[0].conv1.weight, ref["layer2.0.conv1.weight"])


def test_a_whole_pickled_model_gets_one_plain_line(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torchvision.models.mobilenet_v2(), path)
    with pytest.raises(BackboneWeightsError) as info:
        build_canet("mobilenetv2", 11, pretrained_backbone=str(path))
    text = str(info.value)
    assert text.startswith(f"{path}: refused, it holds pickled Python objects")
    assert "\n" not in text and "\x1b" not in text and "weights_only" not in text


def test_a_damaged_file_in_the_hub_cache_is_named_damaged(tmp_path, monkeypatch):
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    path = cache / MBV2_FILE
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted copy
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("the cached file is there: nothing to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(BackboneWeightsError) as info:
        build_canet("mobilenetv2", 11, pretrained_backbone=True)
    text = str(info.value)
    assert text.startswith(f"{path}: damaged or truncated") and "replace it" in text
    assert "could not be downloaded" not in text and "\n" not in text


def test_a_ddp_saved_state_dict_loads(tmp_path):
    torch.manual_seed(9)
    net = torchvision.models.mobilenet_v2()
    ddp_state = {"module." + k: v for k, v in net.state_dict().items()}
    torch.save(ddp_state, tmp_path / "ddp.pth")
    # torch's own helper for DDP files gives the names back; the weights must be these.
    plain = dict(ddp_state)
    torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(plain, "module.")
    model = build_canet("mobilenetv2", 11, pretrained_backbone=str(tmp_path / "ddp.pth"))
    assert torch.equal(model.context["17"].conv[0][0].weight,
                       plain["features.17.conv.0.0.weight"])
    assert torch.equal(model.context["3"].conv[1][1].running_mean,
                       plain["features.3.conv.1.1.running_mean"])


@pytest.mark.parametrize("count", [np.int64(11), np.uint8(11), torch.tensor(11)])
def test_integral_class_counts_are_counts(count):
    assert build_canet("mobilenetv2", count).classifier.out_channels == 11


@pytest.mark.parametrize("count", [True, False, 11.0, "11", np.True_, torch.tensor(True), 0])
def test_non_counts_are_refused_clearly(count):
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        build_canet("mobilenetv2", count)


# -- canet train ------------------------------------------------------------------------------
def _mbv2_file(path: Path, seed: int = 4) -> dict:
    torch.manual_seed(seed)
    ref = torchvision.models.mobilenet_v2().state_dict()
    torch.save(ref, path)
    return ref


def _context_matches(checkpoint: Path, ref: dict) -> bool:
    """Whether the run's frozen context branch holds the file's weights (features 0-17)."""
    state = read_checkpoint(checkpoint)["state_dict"]
    names = ["features.0.0.weight", "features.17.conv.2.weight", "features.9.conv.1.1.bias"]
    return all(torch.equal(state["context." + n[len("features."):]], ref[n]) for n in names)


def test_offline_pretrained_backbone_is_one_line_before_the_data_loads(
        isolated, capsys, monkeypatch):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    monkeypatch.setenv("TORCH_HOME", str(isolated / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    assert canet_main(flags(root, isolated / "run", "--pretrained-backbone")) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("canet train: error: ImageNet weights "
                                                   f"for mobilenetv2 ({MBV2_FILE})"), err
    # The advice is what the command line and a config file take.
    assert "--pretrained-backbone FILE" in err and "pretrained_backbone: FILE" in err
    assert "train:" not in out  # the data set's "train: N frames" line: not read
    assert not (isolated / "run").exists()


@pytest.mark.parametrize("how", ["flag", "config"])
def test_pretrained_backbone_file_from_the_flag_or_a_config(isolated, how):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    ref = _mbv2_file(isolated / "mbv2.pth")
    if how == "flag":
        given = ["--pretrained-backbone", str(isolated / "mbv2.pth")]
    else:
        (isolated / "c.yaml").write_text(f"pretrained_backbone: {isolated / 'mbv2.pth'}\n")
        given = ["--config", str(isolated / "c.yaml")]
    run = isolated / "run"
    assert canet_main(flags(root, run, *given, "--train-layers", "decoder",
                            "--max-steps-this-run", "1")) == 0
    assert _context_matches(run / "last.pt", ref)


def test_a_config_value_that_is_neither_is_refused(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    (isolated / "c.yaml").write_text("pretrained_backbone: 5\n")
    assert canet_main(flags(root, isolated / "run", "--config", str(isolated / "c.yaml"))) == 1
    err = capsys.readouterr().err
    assert err == (f"canet train: error: {isolated / 'c.yaml'}: pretrained_backbone: expected "
                   f"true, false or the path of a .pth weights file, got 5\n")


def test_a_wrong_file_from_the_flag_is_one_line(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    path = _placeholder_file(isolated / "r34.pth", "resnet34")
    assert canet_main(flags(root, isolated / "run", "--backbone", "resnet18",
                            "--pretrained-backbone", str(path))) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(f"canet train: error: {path}: not resnet18 "
                                                   f"weights: it holds resnet34-like weights")
    assert "train:" not in out


@pytest.mark.parametrize("bare", [True, False])
def test_a_resume_does_not_need_the_imagenet_file_again(isolated, bare):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    ref = _mbv2_file(isolated / "mbv2.pth")
    run = isolated / "run"
    first = flags(root, run, "--pretrained-backbone", str(isolated / "mbv2.pth"),
                  "--train-layers", "decoder", "--max-steps-this-run", "1")
    assert canet_main(first) == 0
    (isolated / "mbv2.pth").unlink()  # another machine, a cleaned folder: last.pt has it all
    again = (["train", "--resume", str(run / "last.pt")] if bare
             else [*first[:-2], "--resume", str(run / "last.pt")])
    assert canet_main(again) == 0
    assert read_checkpoint(run / "last.pt")["train_state"]["global_step"] == 4
    assert _context_matches(run / "last.pt", ref)

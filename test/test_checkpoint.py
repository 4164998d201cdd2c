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

"""The checkpoint format: round trip, atomic writes and every bad-file case."""
import os
import pickle

import pytest
import torch

from canet_ros.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    build_metadata,
    class_set_from_metadata,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from canet_ros.classes import CAMVID, CITYSCAPES
from canet_ros.models import build_canet
from canet_ros.training.export import export_checkpoint


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    meta = build_metadata("mobilenetv2", CAMVID, mean=(0.4, 0.4, 0.4), std=(0.3, 0.3, 0.3),
                          input_size=(480, 360), train_args={"lr": 1e-4, "crop": (240, 180)},
                          metrics={"val_miou": 0.5})
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "m.pt", model, meta)
    return model, path


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded, meta = load_checkpoint(path)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.eval()(x))
    assert meta["backbone"] == "mobilenetv2" and meta["num_classes"] == 11
    assert meta["input_size"] == [480, 360] and meta["mean"] == [0.4, 0.4, 0.4]
    assert meta["train_args"] == {"lr": 1e-4, "crop": [240, 180]}
    assert class_set_from_metadata(meta) == CAMVID


def test_loads_with_weights_only(saved):
    _, path = saved
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == "canet_ros.checkpoint"


def test_half_storage_is_smaller_and_close(tmp_path, saved):
    model, full = saved
    path = save_checkpoint(tmp_path / "h.pt", model, build_metadata("mobilenetv2", CAMVID),
                           half=True)
    stored = read_checkpoint(path)["state_dict"]
    reference = model.state_dict()
    for name, value in stored.items():
        # Floating tensors halve; integer buffers (BatchNorm's step count) keep their type.
        wanted = torch.float16 if reference[name].is_floating_point() else reference[name].dtype
        assert value.dtype == wanted, name
    # Nearly every byte is a weight, so fp16 storage is about half the fp32 file.
    assert path.stat().st_size < 0.55 * full.stat().st_size
    loaded, _ = load_checkpoint(path)
    for name, value in loaded.state_dict().items():
        assert value.dtype == reference[name].dtype, name
        assert torch.allclose(value, reference[name], rtol=1e-3, atol=1e-4), name


def test_atomic_save_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path, saved, monkeypatch):
    model, _ = saved
    path = tmp_path / "a.pt"
    save_checkpoint(path, model, build_metadata("mobilenetv2", CAMVID))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        save_checkpoint(path, model, build_metadata("mobilenetv2", CAMVID))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.pt"]


def test_truncated_file(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="trunc.pt.*(unreadable|truncated)"):
        load_checkpoint(bad)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="plain.pt.*not a canet_ros checkpoint"):
        load_checkpoint(plain)
    # A bare pickle (not torch's format); armed torch files: test_checkpoint_security.py
    pickled = tmp_path / "pickled.pt"
    with open(pickled, "wb") as f:
        pickle.dump({"format": "canet_ros.checkpoint", "obj": object()}, f)
    with pytest.raises(CheckpointError, match="pickled.pt"):
        load_checkpoint(pickled)
    with pytest.raises(CheckpointError, match="missing.pt.*no such"):
        load_checkpoint(tmp_path / "missing.pt")


def test_wrong_architecture(tmp_path, saved):
    _, path = saved
    blob = read_checkpoint(path)
    blob["backbone"] = "resnet18"  # claims another architecture than its weights
    forged = tmp_path / "forged.pt"
    torch.save(blob, forged)
    with pytest.raises(CheckpointError, match="forged.pt.*do not fit"):
        load_checkpoint(forged)
    blob["backbone"], blob["num_classes"] = "mobilenetv2", CITYSCAPES.num_classes
    # Class metadata that agrees with the forged count, so the weights are what disagree.
    blob["class_names"] = list(CITYSCAPES.names)
    blob["palette"] = [list(c) for c in CITYSCAPES.colors]
    blob["ignore_index"] = CITYSCAPES.ignore_index
    torch.save(blob, forged)
    with pytest.raises(CheckpointError, match="forged.pt.*do not fit"):
        load_checkpoint(forged)


def test_backbone_mismatch_is_named(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="mobilenetv2.*resnet18"):
        load_checkpoint(path, backbone="resnet18")


def test_missing_metadata_field(tmp_path, saved):
    _, path = saved
    blob = read_checkpoint(path)
    del blob["palette"]
    bad = tmp_path / "nopal.pt"
    torch.save(blob, bad)
    with pytest.raises(CheckpointError, match="nopal.pt.*palette"):
        read_checkpoint(bad)


def test_newer_format_version_is_refused(tmp_path, saved):
    model, path = saved
    blob = read_checkpoint(path)
    assert blob["format_version"] == FORMAT_VERSION
    blob["format_version"] = FORMAT_VERSION + 1  # written by a future canet_ros
    newer = tmp_path / "v_next.pt"
    torch.save(blob, newer)
    with pytest.raises(CheckpointError, match=rf"v_next\.pt.*version.*{FORMAT_VERSION + 1}"):
        read_checkpoint(newer)
    with pytest.raises(CheckpointError, match=r"v_next\.pt"):
        load_checkpoint(newer)
    blob["format_version"] = FORMAT_VERSION  # the same file at today's version loads
    torch.save(blob, newer)
    load_checkpoint(newer)


def test_export_ships_fp16_weights_and_drops_training_state(tmp_path, saved):
    model, _ = saved
    meta = build_metadata("mobilenetv2", CAMVID, mean=(0.4, 0.4, 0.4), std=(0.3, 0.3, 0.3),
                          input_size=(64, 48), train_args={"lr": 1e-3},
                          metrics={"val": {"miou": 0.25}})
    state = {"epoch": 3, "global_step": 30, "optimizer": {"state": {}, "param_groups": []}}
    src = save_checkpoint(tmp_path / "run" / "best.pt", model, meta,
                          extra={"train_state": state})
    before = src.read_bytes()
    dst = export_checkpoint(src, tmp_path / "ship" / "canet.pt")
    assert dst == tmp_path / "ship" / "canet.pt" and src.read_bytes() == before
    shipped = read_checkpoint(dst)
    assert "train_state" not in shipped
    for key in meta:  # the metadata travels unchanged
        assert shipped[key] == meta[key], key
    weights = model.state_dict()
    assert shipped["state_dict"].keys() == weights.keys()
    for key, value in weights.items():
        stored = shipped["state_dict"][key]
        if value.is_floating_point():
            assert stored.dtype == torch.float16 and torch.equal(stored, value.half()), key
        else:
            assert torch.equal(stored, value), key
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    full = read_checkpoint(export_checkpoint(src, tmp_path / "fp32.pt", half=False))
    assert "train_state" not in full
    for key, value in weights.items():
        assert torch.equal(full["state_dict"][key], value), key
    with pytest.raises(CheckpointError, match="nothing.pt"):
        export_checkpoint(tmp_path / "nothing.pt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()

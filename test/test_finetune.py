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

"""Fine-tuning support: photometric jitter by hand, and runs started from a checkpoint."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import make_camvid_tree, tiny_config

import canet_ros.data.transforms as T
from canet_ros.checkpoint import CheckpointError, build_metadata, read_checkpoint, save_checkpoint
from canet_ros.classes import CAMVID, CITYSCAPES
from canet_ros.models import build_canet
from canet_ros.training import merge_config
from canet_ros.training.trainer import Trainer

# Two pixels: an orange-ish one (luma 0.299*200 + 0.587*100 + 0.114*50 = 124.2) and black.
PIXELS = np.array([[[200, 100, 50], [0, 0, 0]]], dtype=np.uint8)


def _jitter_with(monkeypatch, draws, image=PIXELS, strength=0.3):
    """Run the jitter with _uniform returning ``draws`` in order: log-gamma, b, s, c."""
    values = iter(draws)
    monkeypatch.setattr(T, "_uniform", lambda lo, hi: next(values))
    return T.photometric_jitter(image, strength)


def test_jitter_identity_factors_change_nothing(monkeypatch):
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(_jitter_with(monkeypatch, [0.0, 1.0, 1.0, 1.0], img), img)


def test_jitter_brightness_and_saturation_by_hand(monkeypatch):
    # gamma 1, brightness 0.5, saturation 0 (grey = luma), contrast 1: 124.2 * 0.5 = 62.1.
    out = _jitter_with(monkeypatch, [0.0, 0.5, 0.0, 1.0])
    assert out.tolist() == [[[62, 62, 62], [0, 0, 0]]]


def test_jitter_contrast_by_hand(monkeypatch):
    # Contrast 2 about the mean luma (124.2 + 0) / 2 = 62.1: 2 * v - 62.1, clipped.
    out = _jitter_with(monkeypatch, [0.0, 1.0, 1.0, 2.0])
    assert out.tolist() == [[[255, 138, 38], [0, 0, 0]]]


def test_jitter_gamma_by_hand(monkeypatch):
    # log-gamma ln 2 -> gamma 2: 128 -> (128/255)^2 * 255 = 64.25 -> 64; 255 stays 255.
    img = np.array([[[128, 255, 0]]], dtype=np.uint8)
    out = _jitter_with(monkeypatch, [math.log(2.0), 1.0, 1.0, 1.0], img)
    assert out.tolist() == [[[64, 255, 0]]]


def test_jitter_draws_four_numbers_from_torch():
    # A constant draw count keeps resumed runs on the same augmentation stream.
    torch.manual_seed(5)
    expected = torch.rand(5)[4]
    torch.manual_seed(5)
    T.photometric_jitter(PIXELS, 0.3)
    assert float(torch.rand(())) == float(expected)


def test_train_transform_jitters_image_not_label():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    label = rng.integers(0, 11, (40, 60), dtype=np.uint8)
    outs = []
    for strength in (0.0, 0.4):
        tt = T.TrainTransform((32, 24), (0.5,) * 3, (0.25,) * 3, ignore_index=11,
                              photometric=strength)
        torch.manual_seed(2)
        outs.append(tt(img, label))
    (x0, y0), (x1, y1) = outs
    assert torch.equal(y0, y1)  # same crop, same flip: jitter draws come after them
    assert not torch.equal(x0, x1)


def test_photometric_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="photometric"):
        merge_config({"photometric": 1.5})


# -- runs started from a checkpoint ---------------------------------------------------------
def _checkpoint(path: Path, backbone: str = "mobilenetv2", class_set=CAMVID) -> Path:
    torch.manual_seed(11)
    model = build_canet(backbone, class_set.num_classes)
    meta = build_metadata(backbone, class_set, mean=[0.1, 0.2, 0.3], std=[0.4, 0.5, 0.6],
                          input_size=(64, 48))
    return save_checkpoint(path, model, meta, half=True)


def test_init_weights_loads_weights_and_normalisation(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    ckpt = _checkpoint(tmp_path / "start.pt")
    trainer = Trainer(tiny_config(root, tmp_path / "run", init_weights=str(ckpt)))
    start = read_checkpoint(ckpt)["state_dict"]
    for k, v in trainer.bare_model.state_dict().items():
        assert v.dtype == torch.float32 or not v.is_floating_point(), k
        assert torch.equal(v, start[k].to(v.dtype)), k
    assert trainer.data.mean == [0.1, 0.2, 0.3] and trainer.data.std == [0.4, 0.5, 0.6]
    assert trainer.global_step == 0  # a new run, not a resume
    trainer.fit()
    after = read_checkpoint(tmp_path / "run" / "last.pt")
    assert after["mean"] == [0.1, 0.2, 0.3]
    # Stored relative to the run folder (runs travel), it still names the same file.
    stored = after["train_args"]["init_weights"]
    assert (tmp_path / "run" / stored).resolve() == ckpt.resolve()


def test_resume_of_a_finetune_needs_no_init_file(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    ckpt = _checkpoint(tmp_path / "start.pt")
    run = tmp_path / "run"
    Trainer(tiny_config(root, run, init_weights=str(ckpt), max_steps_this_run=3)).fit()
    ckpt.unlink()  # moved or deleted since the run started
    Trainer(tiny_config(root, run, init_weights=str(ckpt), resume=str(run / "last.pt"))).fit()
    assert read_checkpoint(run / "last.pt")["train_state"]["global_step"] == 4


def test_init_weights_explicit_mean_std_win(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    ckpt = _checkpoint(tmp_path / "start.pt")
    cfg = tiny_config(root, tmp_path / "run", init_weights=str(ckpt), mean=[0.5] * 3,
                      std=[0.2] * 3)
    assert Trainer(cfg).data.mean == [0.5] * 3


def test_init_weights_wrong_backbone_names_file(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    ckpt = _checkpoint(tmp_path / "r18.pt", backbone="resnet18")
    with pytest.raises(CheckpointError, match=r"r18\.pt.*resnet18.*mobilenetv2"):
        Trainer(tiny_config(root, tmp_path / "run", init_weights=str(ckpt),
                            backbone="mobilenetv2"))


def test_init_weights_without_a_backbone_takes_the_checkpoints(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    ckpt = _checkpoint(tmp_path / "r18.pt", backbone="resnet18")
    trainer = Trainer(tiny_config(root, tmp_path / "run", init_weights=str(ckpt)))
    assert trainer.cfg.backbone == "resnet18"
    assert "layer4" in dict(trainer.bare_model.context.named_children())  # a ResNet
    assert trainer._metadata()["backbone"] == "resnet18"


def test_init_weights_of_other_classes_keep_the_rows_of_shared_names(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")
    ckpt = _checkpoint(tmp_path / "cs.pt", class_set=CITYSCAPES)
    trainer = Trainer(tiny_config(root, tmp_path / "run", init_weights=str(ckpt)))
    start = read_checkpoint(ckpt)["state_dict"]
    head = trainer.bare_model.classifier
    assert head.out_channels == CAMVID.num_classes
    for camvid_id, name in enumerate(CAMVID.names):
        if name.lower() in CITYSCAPES.names:  # Sky, Building, Pole, Road, Fence, Car
            src = CITYSCAPES.names.index(name.lower())
            assert torch.equal(head.weight[camvid_id], start["classifier.weight"][src].float())
            assert torch.equal(head.bias[camvid_id], start["classifier.bias"][src].float())
    # Every other layer is the checkpoint's.
    assert torch.equal(trainer.bare_model.fca.state_dict()["fuse.0.weight"],
                       start["fca.fuse.0.weight"].float())
    assert "Pavement (new)" in capsys.readouterr().out


def test_init_weights_missing_file_is_clear(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    with pytest.raises(CheckpointError, match="nope.pt: no such checkpoint"):
        Trainer(tiny_config(root, tmp_path / "run", init_weights=str(tmp_path / "nope.pt")))


def test_fewer_frames_than_a_batch_still_train(tmp_path):
    # Three labelled frames and a batch of five: an epoch is one batch of repeated frames.
    root = make_camvid_tree(tmp_path / "camvid", frames=3)
    trainer = Trainer(tiny_config(root, tmp_path / "run", batch_size=5, epochs=2))
    assert trainer.steps_per_epoch == 1
    seen = []
    original = trainer._train_step
    trainer._train_step = lambda images, labels: (seen.append(images.shape[0]),
                                                  original(images, labels))[1]
    trainer.fit()
    assert seen == [5, 5]
    assert read_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["global_step"] == 2

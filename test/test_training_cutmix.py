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

"""CutMix (``cutmix`` in the training config).

Boxes of one frame, with their labels, pasted into another frame of the batch.

Checked on frames whose every pixel holds the frame's index, so what was pasted, from
where and with which labels can be read off the result; then in the trainer: the batch
the network sees is the mixed one, and a resumed run draws the same boxes.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_training import make_camvid_tree, tiny_config
from test_training_resume import flags, log_rows

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training.mixing import AREA_RANGE, cutmix, step_generator
from canet_ros.training.trainer import Trainer


def index_batch(n: int = 6, h: int = 40, w: int = 40):
    """Frame k: every pixel of every channel is k, and so is every label."""
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).clone()
    labels = torch.arange(n).view(n, 1, 1).expand(n, h, w).clone()
    return images, labels


def test_probability_zero_returns_the_batch_untouched():
    images, labels = index_batch()
    out_images, out_labels = cutmix(images, labels, 0.0, step_generator(0, 0))
    assert out_images is images and out_labels is labels


@pytest.mark.parametrize("step", range(5))
def test_each_frame_gets_one_box_of_another_frame_with_its_labels(step):
    images, labels = index_batch()
    original = images.clone()
    out_images, out_labels = cutmix(images, labels, 1.0, step_generator(7, step))
    assert torch.equal(images, original)  # the input batch is not modified
    for k in range(images.shape[0]):
        assert torch.equal(out_labels[k], out_images[k, 0].long())  # pixels carry labels
        assert torch.equal(out_images[k, 0], out_images[k, 2])
        changed = out_images[k, 0] != k
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        assert len(rows) and len(cols)
        box = out_images[k, 0, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        values = box.unique()
        # One rectangle, all of it from one other frame: boxes never carry earlier pastes.
        assert len(values) == 1 and values.item() != k
        assert int(changed.sum()) == box.numel()
        assert box.numel() <= AREA_RANGE[1] * 40 * 40 + 40


def test_frames_are_mixed_at_the_configured_rate():
    images, labels = index_batch(n=8, h=8, w=8)
    mixed = 0
    for step in range(250):
        out, _ = cutmix(images, labels, 0.3, step_generator(1, step))
        mixed += int(sum((out[k] != k).any() for k in range(8)))
    assert 0.25 < mixed / 2000 < 0.35  # 2000 frames; sd of the rate is about 0.01


def test_draws_depend_only_on_seed_and_step():
    images, labels = index_batch()
    a = cutmix(images, labels, 0.5, step_generator(3, 11))[0]
    assert torch.equal(a, cutmix(images, labels, 0.5, step_generator(3, 11))[0])
    others = [cutmix(images, labels, 0.5, step_generator(3, s))[0] for s in range(12, 16)]
    assert any(not torch.equal(a, o) for o in others)


def test_a_batch_of_one_has_nothing_to_mix_and_shapes_must_match():
    images, labels = index_batch(n=1)
    assert cutmix(images, labels, 1.0, step_generator(0, 0))[0] is images
    images, labels = index_batch(n=2)
    with pytest.raises(ValueError, match="do not match"):
        cutmix(images, labels[:, :10], 1.0, step_generator(0, 0))


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_config_rejects_a_probability_outside_0_1(tmp_path, value):
    with pytest.raises(ValueError, match="cutmix"):
        tiny_config(tmp_path, tmp_path / "run", cutmix=value)


class _Recorder:
    """Wraps the training transform and keeps every (image, label) pair in batch order."""

    def __init__(self, inner):
        self.inner, self.pairs = inner, []

    def __call__(self, image, label):
        x, y = self.inner(image, label)
        self.pairs.append((x, y))
        return x, y


def test_the_network_trains_on_the_mixed_batch(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    trainer = Trainer(tiny_config(root, tmp_path / "run", epochs=1, cutmix=1.0,
                                  class_weighting="none", device="cpu"))
    recorder = _Recorder(trainer.data.train_transform)
    trainer.data.train.transform = recorder
    seen, logits = [], []
    trainer.bare_model.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone()) if module.training
        else None)
    trainer.bare_model.register_forward_hook(
        lambda module, args, out: logits.append(out.detach().clone()) if module.training
        else None)
    trainer.fit()
    assert len(seen) == 2 and len(recorder.pairs) == 4  # 2 steps of batch 2
    losses = []
    for k in range(2):
        clean = torch.stack([x for x, _ in recorder.pairs[2 * k:2 * k + 2]])
        target = torch.stack([y for _, y in recorder.pairs[2 * k:2 * k + 2]])
        mixed, mixed_target = cutmix(clean, target, 1.0, step_generator(3, k))
        assert not torch.equal(mixed, clean)
        assert torch.equal(seen[k], mixed)
        losses.append(F.cross_entropy(logits[k], mixed_target, ignore_index=11).item())
    logged = float(log_rows(tmp_path / "run")[0]["train_loss"])
    assert logged == pytest.approx(sum(losses) / 2, rel=1e-5)


def test_resumed_run_draws_the_same_boxes(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    assert canet_main(flags(root, tmp_path / "plain")) == 0
    assert canet_main(flags(root, tmp_path / "straight", "--cutmix", "1")) == 0
    assert canet_main(flags(root, tmp_path / "split", "--cutmix", "1",
                            "--max-steps-this-run", "3")) == 0
    assert canet_main(["train", "--resume", str(tmp_path / "split" / "last.pt")]) == 0
    plain, straight, split = (read_checkpoint(tmp_path / name / "last.pt")
                              for name in ("plain", "straight", "split"))
    assert split["train_args"]["cutmix"] == 1.0
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, split["state_dict"][key]), key
    assert any(not torch.equal(value, plain["state_dict"][key])
               for key, value in straight["state_dict"].items() if value.is_floating_point())

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

"""The sample's accuracy note for a checkpoint other than the bundled model.

It said "a model trained on CamVid train has seen this drive, so this is not a held-out
score" for every such checkpoint, also one that never saw drive 0016E5; it now says what
the checkpoint's recorded training saw, as ``canet evaluate``'s seen_in_training does.
"""
from __future__ import annotations

import re

import pytest
from test_bag_helpers import read_bag

from canet_ros.bag import SAMPLE_BAG, SAMPLE_GT_TOPIC, SAMPLE_IMAGE_TOPIC
from canet_ros.bag.sample import SAMPLE_FRAME_NAMES, accuracy_note
from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.models import build_canet


@pytest.fixture(scope="module")
def model():
    return build_canet("resnet18", 11).eval()


def _note(tmp_path, model, train_args):
    path = save_checkpoint(tmp_path / "c.pt", model,
                           build_metadata("resnet18", CAMVID, train_args=train_args))
    return accuracy_note(SAMPLE_BAG, str(path), SAMPLE_GT_TOPIC, 8)


def test_a_run_on_other_drives_never_saw_the_sample(tmp_path, model):
    note = _note(tmp_path, model, {"dataset": "camvid", "train_split": "train",
                                   "train_include": ["0001TP"]})
    assert "never saw" in note and "not a held-out score" not in note


def test_a_run_on_camvid_train_saw_the_drive_not_the_frames(tmp_path, model):
    note = _note(tmp_path, model, {"dataset": "camvid", "train_split": "train"})
    assert "other frames of this drive" in note and "never saw" not in note


def test_a_run_on_train_and_val_trained_on_the_sample_frames(tmp_path, model):
    note = _note(tmp_path, model, {"dataset": "camvid", "train_split": "train+val"})
    assert "trained on 8 of them" in note and "not a held-out score" in note


def test_unrecorded_training_is_said_as_a_condition(tmp_path, model):
    note = _note(tmp_path, model, {})
    assert "if this checkpoint trained on CamVid train" in note


def test_the_named_frames_are_the_bags(tmp_path):
    # tools/make_sample_bag.py stamps each frame (frame number - first) / 30 Hz after the
    # first: the names' numbers must give the bag's stamp offsets.
    bag = read_bag(SAMPLE_BAG)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
              for _, m in bag[SAMPLE_IMAGE_TOPIC]]
    numbers = [int(re.findall(r"_(\d+)\.png$", n)[0]) for n in SAMPLE_FRAME_NAMES]
    assert len(stamps) == len(numbers)
    for stamp, number in zip(stamps, numbers, strict=True):
        assert round((stamp - stamps[0]) * 30 / 1e9) == number - numbers[0]

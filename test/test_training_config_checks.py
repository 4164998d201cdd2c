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

"""Loss and schedule options are checked before training, in one `canet train: error:` line.

Unchecked, a wrong count of class weights failed at step 1 with a RuntimeError traceback,
negative weights (given, or from enet_c <= 1) trained silently, and a negative poly power
divided by zero at the last step.
"""
from __future__ import annotations

import numpy as np
import pytest

from canet_ros.classes import ClassSet
from canet_ros.cli import main as canet_main
from canet_ros.data import write_dataset
from canet_ros.training import merge_config


@pytest.mark.parametrize("values, message", [
    ({"class_weights": [1.0, 2.0]}, "2 values for 11 classes"),  # CamVid: 11 classes
    ({"dataset": "cityscapes", "class_weights": [1.0] * 11}, "11 values for 19 classes"),
    ({"dataset": "folder", "class_weights": [1.0, -2.0, 3.0]}, "positive"),
    ({"class_weights": [1.0] * 10 + [0.0]}, "positive"),
    ({"class_weights": [1.0] * 10 + [float("inf")]}, "positive"),
    ({"class_weights": [1.0] * 10 + [float("nan")]}, "positive"),
    ({"enet_c": 0.5}, "enet_c must be greater than 1"),
    ({"enet_c": 1.0}, "enet_c must be greater than 1"),
    ({"poly_power": -1.0}, "poly_power must be positive"),
    ({"poly_power": 0.0}, "poly_power must be positive"),
    ({"poly_power": float("nan")}, "poly_power must be positive"),
    ({"lr": -1.0}, "lr must be a positive number"),  # torch's own words came after the data
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"weight_decay": -1e-4}, "weight_decay must be at least 0"),
])
def test_bad_loss_and_schedule_options_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        merge_config({}, values)


@pytest.mark.parametrize("flag, value, message", [
    ("--threads", "-1", "'-1' must be at least 1"),  # was a RuntimeError traceback
    ("--threads", "0", "'0' must be at least 1"),
    ("--max-steps-this-run", "-2", "'-2' must be at least 1"),  # stopped before step 1
    ("--late-crop-epochs", "-3", "'-3' must be at least 0"),  # silently ignored
])
def test_counts_are_usage_errors(capsys, tmp_path, flag, value, message):
    with pytest.raises(SystemExit) as exc:  # before the (missing) data is looked at
        canet_main(["train", "--data-root", str(tmp_path / "none"), "--out-dir",
                    str(tmp_path / "run"), flag, value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("key, value", [("threads", -1), ("max_steps_this_run", 0),
                                        ("late_crop_epochs", -1)])
def test_counts_in_a_config_file_are_refused(key, value):
    with pytest.raises(ValueError, match=f"{key}: expected an integer of at least"):
        merge_config({key: value}, {}, "my.yaml")


def test_sound_values_pass():
    cfg = merge_config({}, {"class_weights": [0.5] * 11, "enet_c": 1.5, "poly_power": 2.0})
    assert cfg.class_weights == [0.5] * 11
    # A folder's class count is unknown until it is read: only the values are checked here.
    assert merge_config({}, {"dataset": "folder", "class_weights": [1.0, 2.0]})


def _three_class_folder(root):
    cs = ClassSet("toy", ("red", "green", "blue"), ((200, 30, 30), (30, 200, 30), (30, 30, 200)),
                  255)
    rng = np.random.default_rng(0)
    items = []
    for i in range(4):
        mask = rng.integers(0, 3, (48, 64)).astype(np.uint8)
        items.append((f"f{i}", np.array(cs.colors, np.uint8)[mask], mask))
    return write_dataset(root, cs, items, {"train": ["f0", "f1", "f2"], "val": ["f3"]})


def test_a_folders_class_weight_count_is_checked_before_training(tmp_path, capsys):
    root = _three_class_folder(tmp_path / "data")
    out = tmp_path / "run"
    code = canet_main(["train", "--dataset", "folder", "--data-root", str(root), "--out-dir",
                       str(out), "--steps", "2", "--batch-size", "2", "--crop-size", "48", "32",
                       "--workers", "0", "--threads", "1", "--device", "cpu", "--no-progress",
                       "--val-sets", "--class-weights", "1", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0] == ("canet train: error: class_weights has 2 values for 3 classes; "
                      "give one per class")
    assert not (out / "last.pt").exists()


def test_a_folder_replay_set_without_its_root_names_the_replay_flag(tmp_path, capsys):
    # It said "--data-root DIR", which is the training set's folder, not the replay set's.
    assert canet_main(["train", "--data-root", str(tmp_path / "none"), "--out-dir",
                       str(tmp_path / "run"), "--replay-dataset", "folder",
                       "--replay-ratio", "1"]) == 1
    err = capsys.readouterr().err
    assert err == ("canet train: error: replay_dataset 'folder' needs its folder "
                   "(--replay-root DIR)\n")
    assert not (tmp_path / "run").exists()

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

"""A --config file's values meet the rules of their flags.

Unchecked, `lr: 1e-4` (text to YAML 1.1, and the paper's lr) and `batch_size: eight`,
`crop_size: 480`, `device: tpu`, `val_sets: val`, `seed: abc`, `mean: [1, 2]` or
`data_root: 5` ended in a Python traceback, some only after the data set had loaded, and
`eval_batch_size: 0` or `workers: -1` in torch's message naming another option.
"""
from __future__ import annotations

import pytest
from test_training import make_camvid_tree
from test_training_resume import isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training import merge_config
from canet_ros.training.config import load_yaml


@pytest.mark.parametrize("line, message", [
    ("batch_size: eight", "batch_size: expected an integer of at least 1, got 'eight'"),
    ("crop_size: 480", "crop_size: expected [WIDTH, HEIGHT], two positive integers, got 480"),
    ("crop_size: [0, 5]", "crop_size: expected [WIDTH, HEIGHT], two positive integers, "
                          "got [0, 5]"),
    ("device: tpu", "device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("val_sets: val", "val_sets: expected a list of NAME=SPLIT[:PREFIXES] or {name, split, "
                      "include, exclude}, got 'val'"),
    ("val_sets: [{name: v, split: val, includes: [0016E5]}]", "val_sets: expected a list of "
     "NAME=SPLIT[:PREFIXES] or {name, split, include, exclude}, got {'name': 'v', 'split': "
     "'val', 'includes': ['0016E5']}"),
    ("seed: abc", "seed: expected an integer, got 'abc'"),
    ("seed: 1.5", "seed: expected an integer, got 1.5"),
    ("mean: [1, 2]", "mean: expected [R, G, B], three numbers, got [1, 2]"),
    ("std: [0.3, 0.3, 0]", "std: expected [R, G, B], three positive numbers, got [0.3, 0.3, 0]"),
    ("data_root: 5", "data_root: expected a string, got 5"),
    ("eval_batch_size: 0", "eval_batch_size: expected an integer of at least 1, got 0"),
    ("workers: -1", "workers: expected an integer of at least 0, got -1"),
    ("flip: 'no'", "flip: expected true or false, got 'no'"),
    ("lr: fast", "lr: expected a number, got 'fast'"),
    ("class_weights: [1, x]", "class_weights: expected a list of numbers, got [1, 'x']"),
    ("learning_rate: 0.1", "unknown training option(s): learning_rate"),
])
def test_a_wrong_value_in_the_config_file_is_one_line_naming_file_and_key(
        isolated, capsys, line, message):  # noqa: F811
    cfg = isolated / "c.yaml"
    cfg.write_text(f"dataset: folder\ndata_root: data\n{line}\n")
    code = canet_main(["train", "--config", str(cfg), "--out-dir", str(isolated / "run")])
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and err == [f"canet train: error: {cfg}: {message}"]
    assert not (isolated / "run").exists()


def test_yaml_1_1_numbers_are_read_as_the_flags_read_them(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nema_decay: 1e-3\nweight_decay: '5e-4'\nepochs: '3'\n"
                    "device: CUDA\n")
    raw = load_yaml(path)
    assert raw["lr"] == "1e-4"  # what PyYAML gives: text, which crashed the range checks
    cfg = merge_config(raw)
    assert (cfg.lr, cfg.ema_decay, cfg.weight_decay, cfg.epochs) == (1e-4, 1e-3, 5e-4, 3)
    assert cfg.device == "cuda"  # as --device CUDA gives it
    assert isinstance(cfg.lr, float) and isinstance(cfg.ema_decay, float)


def test_single_values_where_the_flag_takes_one_become_a_list():
    cfg = merge_config({"train_exclude": "0001TP", "val_sets": "held=train:0001TP",
                        "crop_size": (48, 32)})
    assert cfg.train_exclude == ["0001TP"] and cfg.crop_size == [48, 32]
    assert cfg.val_sets == [{"name": "held", "split": "train", "include": ["0001TP"]}]
    one = merge_config({"val_sets": {"name": "v", "split": "val", "include": "0016E5"}})
    assert one.val_sets == [{"name": "v", "split": "val", "include": ["0016E5"]}]


def test_a_short_mean_flag_is_one_line_too(isolated, capsys):  # noqa: F811
    code = canet_main(["train", "--mean", "0.4", "0.4", "--out-dir", str(isolated / "run")])
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and err == ["canet train: error: mean: expected [R, G, B], three "
                                 "numbers, got [0.4, 0.4]"]


def test_a_config_file_with_the_papers_lr_written_1e_4_trains(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    cfg = isolated / "c.yaml"
    cfg.write_text(f"data_root: {root}\nlr: 1e-4\nema_decay: 1e-3\nsteps: 1\nbatch_size: 2\n"
                   f"crop_size: [48, 32]\nworkers: 0\nthreads: 1\ndevice: cpu\n"
                   f"progress: false\nval_sets: []\n")
    assert canet_main(["train", "--config", str(cfg), "--out-dir", str(isolated / "run")]) == 0
    assert "error" not in capsys.readouterr().err
    saved = read_checkpoint(isolated / "run" / "last.pt")["train_args"]
    assert saved["lr"] == 1e-4 and saved["ema_decay"] == 1e-3

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

"""Validation sets whose results would be filed under one name are refused up front.

A set's results are keyed by its name (log.csv's ``<name>_miou``, best.pt's metrics), the
holdout's by ``heldout_<drive>`` and, with EMA, the raw weights' by ``<name>_raw``: two sets
meeting on one key lost one set's figures and picked best.pt on the other's.
"""
from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
from test_training_holdout import LAYOUT, make_drives
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli import main as canet_main
from canet_ros.training import data_setup, merge_config
from canet_ros.training.validate import run_validation

# (flags, text each of the two sets is named by in the error, the key they would share)
CLASHES = {
    "same name": (["--val-sets", "a=val", "a=train:0001TP"],
                  ["a=val", "a=train:0001TP"], "'a'"),
    "holdout's name": (["--holdout", "0006R0", "--val-sets", "heldout_0006R0=val"],
                       ["heldout_0006R0=val", "--holdout 0006R0"], "'heldout_0006R0'"),
    "another's raw name": (["--ema-decay", "0.9", "--val-sets", "a=val", "a_raw=train:0001TP"],
                           ["a=val", "a_raw=train:0001TP"], "'a_raw'"),
    "raw name first": (["--ema-decay", "0.9", "--val-sets", "a_raw=train:0001TP", "a=val"],
                       ["a=val", "a_raw=train:0001TP"], "'a_raw'"),
    "holdout's raw name": (["--ema-decay", "0.9", "--holdout", "0006R0",
                            "--val-sets", "heldout_0006R0_raw=val"],
                           ["heldout_0006R0_raw=val", "--holdout 0006R0"],
                           "'heldout_0006R0_raw'"),
    # best.pt's metrics hold the run's epoch and score beside the sets' results.
    "the score's key": (["--val-sets", "score=val"], ["score=val"], "'score'"),
    "the epoch's key": (["--val-sets", "epoch=val"], ["epoch=val"], "'epoch'"),
}


@pytest.fixture
def no_data_loads(monkeypatch):
    """Fail a test whose run reads a frame list: the refusal must come before that."""
    def refuse(*args, **kwargs):
        raise AssertionError("the data set was loaded")
    monkeypatch.setattr(data_setup, "build_dataset", refuse)


@pytest.mark.parametrize("case", sorted(CLASHES))
def test_colliding_set_names_are_one_line_refusals(case, isolated, capsys,  # noqa: F811
                                                   no_data_loads):
    extra, sets, key = CLASHES[case]
    root = make_drives(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, *extra)) == 1
    err = capsys.readouterr().err
    assert err.startswith("canet train: error: val_sets: ") and err.count("\n") == 1
    assert key in err and all(s in err for s in sets), err
    assert "another name" in err or "its own name" in err  # what to change
    assert not run.exists()  # no run folder, no config.yaml


def test_a_config_files_clashing_sets_are_refused_too(isolated, capsys):  # noqa: F811
    config = isolated / "sets.yaml"
    config.write_text("val_sets:\n  - {name: v, split: val}\n  - {name: v, split: train}\n")
    root = make_drives(isolated / "camvid")
    assert canet_main(flags(root, isolated / "run", "--config", str(config))) == 1
    err = capsys.readouterr().err
    assert "v=val and v=train are both named 'v'" in err and err.count("\n") == 1


def test_raw_names_clash_only_with_ema(tmp_path):
    # Without EMA nothing is logged as <name>_raw, so a set may carry such a name.
    values = {"data_root": str(tmp_path), "out_dir": str(tmp_path / "run"),
              "val_sets": [{"name": "a", "split": "val"}, {"name": "a_raw", "split": "train"}]}
    assert [s["name"] for s in merge_config({}, values).val_sets] == ["a", "a_raw"]
    with pytest.raises(ValueError, match="'a_raw'"):
        merge_config({}, {**values, "ema_decay": 0.5})


def test_distinct_names_train_and_keep_each_sets_own_results(isolated, capsys):  # noqa: F811
    root = make_drives(isolated / "camvid")
    run = isolated / "run"
    # b_raw has no set b beside it, so nothing clashes even with EMA on.
    assert canet_main(flags(root, run, "--epochs", "1", "--ema-decay", "0.9",
                            "--holdout", "0006R0",
                            "--val-sets", "a=val", "b_raw=train:0001TP,0016E5")) == 0
    with open(run / "log.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert len(header) == len(set(header))
    sets = ["a", "b_raw", "heldout_0006R0"]
    assert {f"{n}{s}_miou" for n in sets for s in ("", "_raw")} <= set(header)
    metrics = read_checkpoint(run / "best.pt")["metrics"]
    # Frame counts from the tree's layout tell the sets apart.
    count = {(split, drive): n for split, drive, n in LAYOUT}
    assert metrics["a"]["frames"] == count["val", "0016E5"]
    assert metrics["b_raw"]["frames"] == count["train", "0001TP"] + count["train", "0016E5"]
    assert metrics["heldout_0006R0"]["frames"] == count["train", "0006R0"]
    assert metrics["selection"] == "mIoU of heldout_0006R0"


def test_run_validation_refuses_shared_names_before_scoring():
    # Specs built past the config check (code that assembles its own data bundle).
    calls = []

    class Model(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape)
            return torch.zeros(x.shape[0], CAMVID.num_classes, *x.shape[-2:])

    frames = [(torch.zeros(3, 8, 8), torch.zeros(8, 8, dtype=torch.long))] * 2
    data = SimpleNamespace(class_set=CAMVID, val=[frames, frames[:1]],
                           val_specs=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError, match="share the name.* a:"):
        run_validation(Model(), data, torch.device("cpu"), False, 2)
    assert calls == []

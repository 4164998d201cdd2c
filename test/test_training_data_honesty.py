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

"""Which frames a run trains and selects on: what a resume may not change, what is warned.

The data is test_training.py's tiny CamVid tree: train holds 0006R0_00000..3, val holds
0016E5_00000..3 (4 frames each), so every count below is read off that layout.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from test_training import make_camvid_tree, tiny_config
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training.config import add_config_arguments, config_from_args
from canet_ros.training.data_setup import build_data

LAST = Path("run") / "last.pt"
# A run's saved config as a checkpoint holds it (only what these tests look at).
SAVED = {"dataset": "camvid", "data_root": "/data/camvid", "train_split": "train",
         "train_exclude": ["0001TP", "0016E5"], "val_sets": [{"name": "val", "split": "val"}],
         "replay_dataset": "camvid", "replay_split": "train", "replay_ratio": 1.0,
         "out_dir": "."}


def _resume(*argv: str, saved=None, config=None) -> object:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--resume", str(LAST), *argv] +
                             (["--config", str(config)] if config else []))
    blob = {"train_state": {}, "train_args": dict(SAVED if saved is None else saved)}
    return config_from_args(args, resumed=blob)


@pytest.mark.parametrize("argv, option, was, asked", [
    (["--holdout", "0006R0"], "--holdout", "none", "0006R0"),
    (["--train-split", "train+val"], "--train-split", "train", "train+val"),
    (["--dataset", "cityscapes"], "--dataset", "camvid", "cityscapes"),
    (["--train-include", "0006R0"], "--train-include", "none", "0006R0"),
    (["--train-exclude", "0001TP"], "--train-exclude", "0001TP 0016E5", "0001TP"),
    (["--val-sets", "val=val:0016E5"], "--val-sets", "val=val", "val=val:0016E5"),
    (["--val-sets"], "--val-sets", "val=val", "none"),
    (["--replay-split", "train+val"], "--replay-split", "train", "train+val"),
    (["--replay-exclude", "0006R0"], "--replay-exclude", "none", "0006R0"),
    (["--replay-dataset", "cityscapes"], "--replay-dataset", "camvid", "cityscapes"),
    (["--replay-ratio", "0"], "--replay-ratio", "1", "0 (no replay)"),
])
def test_a_resume_that_changes_the_frames_is_refused_in_one_line(argv, option, was, asked):
    with pytest.raises(ValueError) as err:
        _resume(*argv)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{LAST}: the run trained with {option} {was}, this resume asks "
                           f"for {asked} ({option});")
    assert text.endswith(f"resume without {option}, or start a new run from its weights "
                         f"with --init-weights {LAST} and another --out-dir")


def test_a_config_file_that_changes_the_frames_is_named(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"holdout": "0006R0", "lr": 1e-3}))
    with pytest.raises(ValueError, match=rf"asks for 0006R0 \(holdout in {job}\); .*"
                                         rf"resume without holdout in {job}, or start"):
        _resume(config=job)


def test_the_runs_own_values_again_and_other_options_are_fine():
    # The same choices written otherwise: other order, repeats, an empty include.
    cfg = _resume("--train-exclude", "0016E5", "0001TP", "0016E5", "--train-include",
                  "--val-sets", "val=val:", "--dataset", "camvid", "--train-split", "train",
                  "--replay-exclude", "--data-root", "/moved/camvid", "--replay-ratio", "2",
                  "--lr", "5e-4", "--epochs", "7")
    assert (cfg.data_root, cfg.replay_ratio, cfg.lr, cfg.epochs) == ("/moved/camvid", 2.0,
                                                                     5e-4, 7)
    assert cfg.holdout is None and cfg.train_exclude == ["0016E5", "0001TP", "0016E5"]


def test_replay_options_of_a_run_without_replay_choose_nothing():
    no_replay = {**SAVED, "replay_ratio": 0.0}
    assert _resume("--replay-split", "train+val", saved=no_replay).replay_split == "train+val"
    with pytest.raises(ValueError, match=r"--replay-ratio 0 \(no replay\), this resume "
                                         r"asks for 0\.5 \(--replay-ratio\)"):
        _resume("--replay-ratio", "0.5", saved=no_replay)


def test_a_val_set_without_a_split_is_the_same_as_split_val(tmp_path):
    # A YAML val_sets entry may leave out its split (it defaults to val).
    unsplit = {**SAVED, "val_sets": [{"name": "val"}]}
    cfg = _resume("--val-sets", "val=val", saved=unsplit)
    assert [(v["name"], v["split"]) for v in cfg.val_sets] == [("val", "val")]
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"val_sets": [{"name": "val"}]}))
    assert _resume(config=job).val_sets[0]["name"] == "val"
    with pytest.raises(ValueError, match="--val-sets val=val, this resume asks for val=train"):
        _resume("--val-sets", "val=train", saved=unsplit)


def test_a_key_an_older_checkpoint_lacks_counts_as_its_default():
    old = {k: v for k, v in SAVED.items() if k not in ("replay_exclude", "train_include")}
    assert _resume("--train-include", saved=old).train_include == []
    with pytest.raises(ValueError, match="--train-include none, this resume asks for 0006R0"):
        _resume("--train-include", "0006R0", saved=old)


def test_cli_resume_with_a_holdout_of_a_drive_it_trained_on(isolated, capsys):  # noqa: F811
    # The reviewer's case: a run on train+val, resumed with --holdout of a trained drive.
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--train-split", "train+val",
                            "--max-steps-this-run", "1")) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    last = run / "last.pt"
    assert canet_main(["train", "--resume", str(last), "--holdout", "0006R0"]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(
        f"canet train: error: {last}: the run trained with --holdout none, this resume asks "
        f"for 0006R0 (--holdout);")
    assert out == ""  # refused before any data loads
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # Its own values again are no change; the run goes on.
    assert canet_main(["train", "--resume", str(last), "--train-split", "train+val",
                       "--val-sets", "val=val", "--max-steps-this-run", "1"]) == 0
    done = read_checkpoint(last)
    assert done["train_state"]["global_step"] == 2 and done["train_args"]["holdout"] is None


def _warnings(capsys) -> list:
    return [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("warning:")]


PICKED = "; its score is not held out and best.pt is picked on frames the run trains on"


def test_train_plus_val_with_the_val_set_is_warned_about(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")
    build_data(tiny_config(root, tmp_path / "r", train_split="train+val"))
    assert _warnings(capsys) == ["warning: val: 4 of its 4 frames are training frames" + PICKED]
    build_data(tiny_config(root, tmp_path / "r", train_split="train+val"), verbose=False)
    assert capsys.readouterr().out == ""  # other ranks print nothing


def test_a_val_set_of_training_frames_unless_they_are_excluded(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")
    sets = [{"name": "val", "split": "val"},
            {"name": "dusk", "split": "train", "include": ["0006R0_00001"]}]
    build_data(tiny_config(root, tmp_path / "r", val_sets=sets))
    assert _warnings(capsys) == ["warning: dusk: 1 of its 1 frames are training frames" + PICKED]
    build_data(tiny_config(root, tmp_path / "r", val_sets=sets,
                           train_exclude=["0006R0_00001"]))
    assert _warnings(capsys) == []
    # Picked on val alone: dusk's score is still not held out, but best.pt is not its doing.
    build_data(tiny_config(root, tmp_path / "r", val_sets=sets, select_on="val"))
    assert _warnings(capsys) == ["warning: dusk: 1 of its 1 frames are training frames; its "
                                 "score is not held out"]


def test_a_holdout_set_is_not_warned_about_but_an_overlapping_val_set_is(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")
    build_data(tiny_config(root, tmp_path / "r", train_split="train+val", holdout="0006R0"))
    # heldout_0006R0 is removed from training; val (0016E5) is trained on, not selecting.
    assert _warnings(capsys) == ["warning: val: 4 of its 4 frames are training frames; its "
                                 "score is not held out"]


def test_replayed_frames_count_by_their_real_path(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")
    (tmp_path / "link").symlink_to(root)  # the same frames under another name
    sets = [{"name": "orig", "split": "train"}]
    build_data(tiny_config(root, tmp_path / "r", train_split="val", val_sets=sets,
                           replay_dataset="camvid", replay_root=str(tmp_path / "link"),
                           replay_split="train", replay_exclude=["0006R0_00002"],
                           replay_ratio=1.0))
    assert _warnings(capsys) == ["warning: orig: 3 of its 4 frames are training frames" + PICKED]


def test_a_relative_data_root_counts_the_same_frames(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_camvid_tree(Path("camvid"))
    build_data(tiny_config(Path("camvid"), Path("r"), train_split="train+val"))
    assert _warnings(capsys) == ["warning: val: 4 of its 4 frames are training frames" + PICKED]

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

"""docs/training.md's order of settings: defaults < resumed run < --config < flags.

Runs are the tiny synthetic ones of test_training_resume.py (4 frames of 64x48, batch 2:
two steps an epoch), through the command line, as a user meets them.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch
import yaml
from test_training import make_camvid_tree
from test_training_resume import flags, isolated, log_rows  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training import config_from_args, merge_config
from canet_ros.training.trainer import Trainer


def _recipe(path: Path, root: Path, **extra) -> Path:
    """Write a user's --config file holding the tiny recipe of ``flags`` (and ``extra``)."""
    values = {"data_root": str(root), "epochs": 2, "batch_size": 2, "crop_size": [48, 32],
              "scale_min": 0.75, "scale_max": 1.25, "workers": 0, "threads": 1,
              "eval_batch_size": 4, "seed": 3, "device": "cpu", "progress": False,
              "channels_last": False, **extra}
    path.write_text(yaml.safe_dump(values))
    return path


def _step(run: Path) -> int:
    return read_checkpoint(run / "last.pt")["train_state"]["global_step"]


def test_config_and_resume_go_on_in_the_run_itself(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    other = Path("runs") / "canet"  # the default out_dir: another run lives there
    assert canet_main(flags(root, other, "--seed", "7", "--max-steps-this-run", "1")) == 0
    assert canet_main(flags(root, Path("runA"), "--lr", "5e-4", "--val-every", "9",
                            "--max-steps-this-run", "1")) == 0
    before = (other / "last.pt").read_bytes()
    recipe = _recipe(isolated / "recipe.yaml", root, eval_batch_size=2)  # no lr, no out_dir
    assert canet_main(["train", "--config", str(recipe), "--resume", "runA/last.pt",
                       "--max-steps-this-run", "1"]) == 0
    assert (other / "last.pt").read_bytes() == before  # it was replaced by runA's resume
    assert _step(Path("runA")) == 2
    saved = read_checkpoint(Path("runA") / "last.pt")["train_args"]
    # The run's own lr and val_every (not the defaults 1e-4 and 1), the file's eval batch.
    assert (saved["lr"], saved["val_every"], saved["eval_batch_size"]) == (5e-4, 9, 2)
    assert yaml.safe_load((Path("runA") / "config.yaml").read_text())["seed"] == 3
    capsys.readouterr()
    # Asked for explicitly, another run's folder is still refused, in one line.
    assert canet_main(["train", "--resume", "runA/last.pt", "--out-dir", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"canet train: error: {other}: holds "
                                                   f"another run (last.pt)")
    assert "runA" in err and (other / "last.pt").read_bytes() == before
    assert _step(Path("runA")) == 2


def test_a_runs_config_yaml_works_from_any_folder(isolated, monkeypatch, capsys):  # noqa: F811
    work, elsewhere = isolated / "work", isolated / "elsewhere"
    make_camvid_tree(work / "data" / "camvid")
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    run = Path("runs") / "a"
    assert canet_main(flags(Path("data") / "camvid", run, "--val-every", "9",
                            "--max-steps-this-run", "1")) == 0
    # Stored relative to the run folder, as docs/training.md says.
    assert yaml.safe_load((run / "config.yaml").read_text())["data_root"] == \
        str(Path("..") / ".." / "data" / "camvid")
    monkeypatch.chdir(elsewhere)
    config = Path("..") / "work" / "runs" / "a" / "config.yaml"
    # Resumed alongside its own checkpoint: the data and the run folder are the run's.
    assert canet_main(["train", "--config", str(config), "--resume",
                       str(config.parent / "last.pt"), "--max-steps-this-run", "1"]) == 0
    assert _step(work / run) == 2
    # A new run with the recipe: the data is found, and the new folder gets the run.
    assert canet_main(["train", "--config", str(config), "--out-dir", "b",
                       "--epochs", "1"]) == 0
    assert _step(elsewhere / "b") == 2
    new = yaml.safe_load((elsewhere / "b" / "config.yaml").read_text())
    assert (elsewhere / "b" / new["data_root"]).resolve() == \
        (work / "data" / "camvid").resolve()
    capsys.readouterr()
    # Its out_dir "." is the run's folder, not the working one: a new run there is refused.
    assert canet_main(["train", "--config", str(config)]) == 1
    assert "holds an earlier run" in capsys.readouterr().err
    assert not (elsewhere / "config.yaml").exists()


def test_other_config_files_read_relative_paths_from_the_working_folder(isolated):  # noqa: F811
    # Unchanged for a user's file, even one with out_dir "." (no run lies beside it).
    (isolated / "cfgs").mkdir()
    user = isolated / "cfgs" / "user.yaml"
    user.write_text("data_root: camvid\nout_dir: .\nclass_map: map.yaml\n")
    cfg = config_from_args(argparse.Namespace(config=Path("cfgs") / "user.yaml"))
    assert (cfg.data_root, cfg.out_dir, cfg.class_map) == ("camvid", ".", "map.yaml")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_uses_lr_weight_decay_and_poly_power_flags(isolated, monkeypatch,  # noqa: F811
                                                          optimizer):
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--optimizer", optimizer, "--val-every", "9",
                            "--max-steps-this-run", "1")) == 0
    used = []  # (lr, weight_decay, momentum) the optimiser applies at each step of the resume
    real = Trainer._train_step

    def recording(self, images, labels):
        group = self.optimizer.param_groups[0]
        used.append((group["lr"], group["weight_decay"], group.get("momentum")))
        return real(self, images, labels)

    monkeypatch.setattr(Trainer, "_train_step", recording)
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--lr", "2e-3",
                       "--weight-decay", "0.25", "--poly-power", "2", "--momentum", "0.5",
                       "--max-steps-this-run", "2"]) == 0
    # 4 steps in all, 1 done: lr = 2e-3 * (1 - s / 4) ** 2 after s steps.
    assert [u[0] for u in used] == pytest.approx([2e-3 * 0.75 ** 2, 2e-3 * 0.5 ** 2],
                                                 rel=1e-9)
    assert [u[1:] for u in used] == [(0.25, 0.5 if optimizer == "sgd" else None)] * 2
    st = read_checkpoint(run / "last.pt")["train_state"]
    assert st["scheduler"]["base_lrs"] == [2e-3] and st["scheduler"]["power"] == 2.0
    group = st["optimizer"]["param_groups"][0]
    assert (group["initial_lr"], group["weight_decay"]) == (2e-3, 0.25)
    assert group["lr"] == pytest.approx(2e-3 * 0.25 ** 2, rel=1e-9)  # after 3 of 4 steps


def test_an_epochs_flag_replaces_a_config_files_steps(isolated):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    recipe = _recipe(isolated / "steps.yaml", root, steps=6, val_sets=[])  # 3 epochs of 2
    run = isolated / "run"
    assert canet_main(["train", "--config", str(recipe), "--epochs", "1",
                       "--out-dir", str(run)]) == 0
    assert [int(r["step"]) for r in log_rows(run)] == [2]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["epochs"], saved["steps"]) == (1, None)  # recorded as it trained


def test_the_layers_of_steps_and_epochs():
    assert merge_config({"steps": 6}, {"epochs": 1}).steps is None
    assert merge_config({"steps": 6, "epochs": 3}, {}).steps == 6  # a run's saved pair
    assert merge_config({"epochs": 3}, {"steps": 2}).steps == 2  # steps replace epochs
    both = merge_config({"steps": 6}, {"epochs": 1, "steps": 4})
    assert both.steps == 4  # both as flags: steps, as documented


def test_another_batch_size_is_refused_before_the_data_loads(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--batch-size", "1", "--max-steps-this-run", "3")) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--batch-size", "2"]) == 1
    out, err = capsys.readouterr()
    assert err == (f"canet train: error: {run / 'last.pt'}: was trained with batch size 1, "
                   f"this run asks for 2; resume with --batch-size 1\n")
    assert out == ""  # no "train: N frames" line: the data set was not read
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_resume_with_other_workers_says_it_will_not_be_exact(isolated, caplog):  # noqa: F811
    # The augmentation each worker draws depends on how many there are (docs/training.md).
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "1")) == 0
    caplog.clear()
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--workers", "0",
                       "--max-steps-this-run", "1"]) == 0
    assert "--workers" not in caplog.text
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--workers", "1",
                       "--max-steps-this-run", "1"]) == 0
    assert ("was trained with --workers 0, this run uses 1" in caplog.text
            and "resume with --workers 0" in caplog.text)
    assert _step(run) == 3


def test_a_moved_run_with_an_absolute_saved_out_dir_goes_on_where_it_is(isolated):  # noqa: F811
    # Runs made before saved paths became relative hold their folder as an absolute path.
    root = make_camvid_tree(isolated / "camvid")
    old = isolated / "old_place"
    assert canet_main(flags(root, old, "--max-steps-this-run", "1")) == 0
    blob = torch.load(old / "last.pt", map_location="cpu", weights_only=True)
    blob["train_args"]["out_dir"] = str(old.resolve())
    torch.save(blob, old / "last.pt")
    moved = isolated / "moved"
    old.rename(moved)
    assert canet_main(["train", "--resume", str(moved / "last.pt"),
                       "--max-steps-this-run", "1"]) == 0
    assert not old.exists() and _step(moved) == 2
    assert len(log_rows(moved)) == 1  # epoch 1 (2 steps) ended in the moved folder


def test_a_job_file_in_a_run_folder_is_not_taken_for_the_runs_config(isolated):  # noqa: F811
    # Only the config.yaml a run wrote is read as the run's own (its stop count dropped).
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    run.mkdir()
    _recipe(run / "job.yaml", root.resolve(), out_dir=".", max_steps_this_run=1)
    os.chdir(run)
    assert canet_main(["train", "--config", "job.yaml"]) == 0
    assert canet_main(["train", "--config", "job.yaml", "--resume", "last.pt"]) == 0
    assert _step(run) == 2  # one step each time, as the file says


def test_a_run_from_another_runs_config_leaves_its_export_alone(isolated):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    assert canet_main(flags(root, Path("runs/a"), "--epochs", "1",
                            "--export", "runs/a/model.pt")) == 0
    before = Path("runs/a/model.pt").read_bytes()
    assert canet_main(["train", "--config", "runs/a/config.yaml", "--out-dir", "runs/b"]) == 0
    assert Path("runs/a/model.pt").read_bytes() == before
    assert _step(Path("runs/b")) == 2


def test_a_runs_pretrained_backbone_file_is_found_from_another_folder(isolated):  # noqa: F811
    from torchvision.models import mobilenet_v2

    work, elsewhere = isolated / "project", isolated / "elsewhere"
    root = make_camvid_tree(work / "camvid")
    (work / "weights").mkdir()
    torch.save(mobilenet_v2(weights=None).state_dict(), work / "weights" / "mbv2.pth")
    elsewhere.mkdir()
    os.chdir(work)
    assert canet_main(flags(root, Path("runs/a"), "--pretrained-backbone", "weights/mbv2.pth",
                            "--max-steps-this-run", "1")) == 0
    stored = yaml.safe_load(Path("runs/a/config.yaml").read_text())["pretrained_backbone"]
    assert (work / "runs" / "a" / stored).resolve() == (work / "weights" / "mbv2.pth").resolve()
    os.chdir(elsewhere)
    assert canet_main(["train", "--config", "../project/runs/a/config.yaml", "--out-dir", "b",
                       "--epochs", "1"]) == 0
    assert _step(elsewhere / "b") == 2


def test_another_optimizer_is_refused_before_the_data_loads(isolated, capsys):  # noqa: F811
    # Adam's saved state has no momentum: SGD failed with a KeyError at its first step.
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "1")) == 0
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--optimizer", "sgd"]) == 1
    out, err = capsys.readouterr()
    assert err == (f"canet train: error: {run / 'last.pt'}: was trained with --optimizer "
                   f"adam, this run asks for sgd; resume with --optimizer adam\n")
    assert out == "" and _step(run) == 1

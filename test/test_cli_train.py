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

"""``canet train`` as a user meets it: resume hints, run folders and --resume files.

Runs are the tiny synthetic ones of test_training_resume.py (one step each).
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from test_training import make_camvid_tree
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import DEFAULT_CHECKPOINT, read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training import merge_config
from canet_ros.training.export import export_checkpoint
from canet_ros.training.trainer import Trainer


def _hint(text: str) -> str:
    line = next(line for line in text.splitlines() if "resume with --resume" in line)
    return line.split("--resume ", 1)[1]


def test_the_resume_hint_names_the_run_the_same_way_each_time(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    assert canet_main(flags(root, Path("runs") / "x", "--epochs", "3",
                            "--max-steps-this-run", "1")) == 0
    first = _hint(capsys.readouterr().out)
    assert first == str(Path("runs") / "x" / "last.pt")
    assert canet_main(["train", "--resume", first, "--max-steps-this-run", "1"]) == 0
    assert _hint(capsys.readouterr().out) == first  # was the absolute path after a resume


def test_a_new_run_does_not_replace_an_earlier_runs_checkpoints(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "1")) == 0
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    assert canet_main(flags(root, run, "--seed", "4")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("canet train: error:")
    assert str(run) in err and "earlier run" in err and f"--resume {run / 'last.pt'}" in err
    assert (run / "last.pt").read_bytes() == before


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_cleanly_with_status_130(isolated, capsys, monkeypatch,  # noqa: F811
                                              signum, status):
    # The README: "130 interrupted", for every command; a stop at --max-steps-this-run is
    # a finished run (status 0, above), a Ctrl-C is not. SIGTERM (a scheduler's preemption,
    # docker stop) stops it the same way: a resumable last.pt, status 143.
    root = make_camvid_tree(isolated / "camvid")
    real = Trainer._train_step

    def step_then_ctrl_c(self, images, labels):
        out = real(self, images, labels)
        os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(Trainer, "_train_step", step_then_ctrl_c)
    run = isolated / "run"
    assert canet_main(flags(root, run, "--epochs", "3")) == status
    out = capsys.readouterr().out
    assert "resume with --resume" in out and (run / "last.pt").is_file()
    assert not (run / "model.pt").exists()


def test_the_epoch_line_shows_a_small_lr_as_the_progress_bar_does(isolated, capsys):  # noqa: F811
    # Every float had 4 decimals: lr 4.4e-05 and below printed as lr=0.0000. 4 frames in
    # batches of 2 for 2 epochs: each epoch's line shows its last step's lr (steps 1 and 3
    # of 4), by hand 4.4e-5 * (1 - 1/4) ** 0.9 = 3.396e-05 and 4.4e-5 * (1 - 3/4) ** 0.9
    # = 1.264e-05, in the bar's 3 significant digits.
    root = make_camvid_tree(isolated / "camvid")
    assert canet_main(flags(root, isolated / "run", "--lr", "4.4e-05")) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch=")]
    assert [dict(kv.split("=") for kv in line.split())["lr"] for line in lines] \
        == ["3.40e-05", "1.26e-05"], lines


def test_a_ctrl_c_while_a_finished_run_closes_only_asks_to_stop(
        isolated, capsys, monkeypatch):  # noqa: F811
    # Between the last epoch and the export the run closes its logs; a first Ctrl-C there
    # used to abort ("aborted") with no model.pt. It now stops as anywhere else: 130, the
    # finished run's checkpoints, and a resume of it exports.
    from canet_ros.training.runlog import RunLog
    root = make_camvid_tree(isolated / "camvid")
    real = RunLog.close

    def ctrl_c_then_close(self):
        os.kill(os.getpid(), signal.SIGINT)
        return real(self)

    monkeypatch.setattr(RunLog, "close", ctrl_c_then_close)
    run = isolated / "run"
    assert canet_main(flags(root, run, "--export-prior-correction", "0")) == 130
    out, err = capsys.readouterr()
    assert "aborted" not in err and "stopped before exporting" in out, (out, err)
    assert not (run / "model.pt").exists()
    assert read_checkpoint(run / "last.pt")["train_state"]["global_step"] == 4
    monkeypatch.setattr(RunLog, "close", real)
    assert canet_main(["train", "--resume", str(run / "last.pt")]) == 0
    assert (run / "model.pt").is_file()


def _folder(run: Path) -> dict:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


@pytest.mark.parametrize("with_config", [False, True])
def test_a_checkpoint_without_train_state_is_refused_before_anything_is_written(
        isolated, capsys, with_config):  # noqa: F811
    # The run's exported model.pt (like best.pt) holds weights only. The refusal came after
    # the data set had loaded and config.yaml (now naming model.pt), log.csv and a new tb/
    # event file had been written into the run folder.
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "1")) == 0
    export_checkpoint(run / "last.pt", run / "model.pt")
    capsys.readouterr()
    before = _folder(run)
    config = ["--config", str(run / "config.yaml")] if with_config else []
    assert canet_main(["train", *config, "--resume", str(run / "model.pt")]) == 1
    out, err = capsys.readouterr()
    assert err == (f"canet train: error: {run / 'model.pt'}: has no train_state, so it cannot "
                   f"continue a run; resume from the run's last.pt (best.pt and model.pt hold "
                   f"weights only)\n")
    assert out == ""  # no "train: N frames" line: the data set was not read
    assert _folder(run) == before


def test_the_bundled_model_as_resume_leaves_its_folder_alone(isolated, capsys):  # noqa: F811
    lone = isolated / "lone"
    lone.mkdir()
    shutil.copy(DEFAULT_CHECKPOINT, lone / "model.pt")
    assert canet_main(["train", "--resume", str(lone / "model.pt")]) == 1
    assert "has no train_state" in capsys.readouterr().err
    assert sorted(p.name for p in lone.iterdir()) == ["model.pt"]


def test_the_trainer_refuses_such_a_resume_before_reading_data(isolated):  # noqa: F811
    shutil.copy(DEFAULT_CHECKPOINT, isolated / "model.pt")
    cfg = merge_config({}, {"data_root": str(isolated / "no-data"), "device": "cpu",
                            "out_dir": str(isolated / "run"),
                            "resume": str(isolated / "model.pt")})
    with pytest.raises(ValueError, match="model.pt: has no train_state"):
        Trainer(cfg)  # not the DatasetError of the missing data folder
    assert not (isolated / "run").exists()

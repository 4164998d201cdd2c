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

"""``canet train --resume`` of runs older versions made, of moved data and of finished runs.

Older versions' checkpoints are today's tiny runs (test_training_resume.py) with their
train_args written back the way those versions stored them: before 2026-12-01 paths as
typed (relative to the working directory) and none of the keys that came with run-relative
paths; before 2026-12-06 no ``export`` key (``--export`` was a flag only, never stored).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from test_training import make_camvid_tree
from test_training_resume import flags, isolated, log_rows  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training.export import export_checkpoint

# Keys that came with run-relative paths (410a122) and with export as a config field.
_NEWER_KEYS = ("holdout", "select_on", "rotate", "blur", "ema_decay", "export")


def _as_older_version(last: Path, drop=_NEWER_KEYS, **values) -> None:
    blob = torch.load(last, map_location="cpu", weights_only=True)
    for key in drop:
        blob["train_args"].pop(key)
    blob["train_args"].update(values)
    torch.save(blob, last)


def _step(run: Path) -> int:
    return read_checkpoint(run / "last.pt")["train_state"]["global_step"]


def _files(run: Path) -> dict:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def _old_run(isolated: Path) -> Path:  # noqa: F811
    """Make a run as `--data-root camvid --out-dir runs/old` by a pre-2026-12-01 version."""
    make_camvid_tree(isolated / "camvid")
    run = Path("runs") / "old"
    assert canet_main(flags(Path("camvid"), run, "--max-steps-this-run", "1")) == 0
    _as_older_version(run / "last.pt", data_root="camvid", out_dir=str(run))
    return run


def test_an_older_runs_data_root_is_read_from_the_working_directory(isolated, capsys):  # noqa: F811
    # It was 'runs/old/camvid/train: CamVid folder not found', a path nobody typed.
    run = _old_run(isolated)
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt"),
                       "--max-steps-this-run", "1"]) == 0
    assert "error" not in capsys.readouterr().err
    assert _step(run) == 2 and len(log_rows(run)) == 1  # epoch 1 done in its own folder
    # From now on the run stores its paths the run-relative way.
    args = read_checkpoint(run / "last.pt")["train_args"]
    assert args["out_dir"] == "." and args["data_root"] == os.path.join("..", "..", "camvid")


def test_an_older_run_resumed_from_another_folder_names_its_checkpoint(
        isolated, capsys, monkeypatch):  # noqa: F811
    run = _old_run(isolated)
    elsewhere = isolated / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    last = Path("..") / run / "last.pt"
    before = _files(isolated / run)
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(last), "--max-steps-this-run", "1"]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(f"canet train: error: {last}: "), err
    assert "data folder camvid is not found" in err and "--data-root DIR" in err, err
    assert out == "" and _files(isolated / run) == before
    assert canet_main(["train", "--resume", str(last), "--data-root", "../camvid",
                       "--max-steps-this-run", "1"]) == 0
    assert _step(isolated / run) == 2


def test_a_moved_data_set_on_resume_names_the_checkpoint_and_data_root(
        isolated, capsys):  # noqa: F811
    # It was 'ROOT/train: CamVid folder not found', with no word of where ROOT came from.
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "1")) == 0
    root.rename(isolated / "moved")
    before = _files(run)
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"canet train: error: {run / 'last.pt'}: the run's data folder "
                          f"{root.resolve()} is not found (data_root in the checkpoint's "
                          f"saved config, '../camvid' from the run folder)"), err
    assert "give its folder with --data-root DIR" in err and _files(run) == before
    # A data root the user gives is judged by the data set, as on any run.
    assert canet_main(["train", "--resume", str(run / "last.pt"),
                       "--data-root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "last.pt" not in err and "CamVid folder not found" in err, err


def _early_export(isolated: Path, *extra: str) -> Path:  # noqa: F811
    """Make a run a pre-2026-12-06 version stopped after epoch 1, exporting model.pt."""
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "3", *extra)) == 0
    export_checkpoint(run / "best.pt", run / "model.pt")  # --export RUN/model.pt did this
    _as_older_version(run / "last.pt", drop=("export",))
    return run


def test_finishing_a_run_whose_export_was_not_recorded_says_model_pt_is_stale(
        isolated, capsys):  # noqa: F811
    run = _early_export(isolated)
    stale = (run / "model.pt").read_bytes()
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt")]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: {run / 'model.pt'} is not this run's final model: the version that started "
        f"the run did not record its --export, so nothing was exported now and model.pt is "
        f"from an earlier stop; export the finished run with canet export --format "
        f"checkpoint --checkpoint {run / 'best.pt'} --out {run / 'model.pt'} (and the "
        f"--prior-correction you used)"], out
    assert (run / "model.pt").read_bytes() == stale and _step(run) == 4
    # The way it names works: a model of the finished run's best.pt.
    assert canet_main(["export", "--format", "checkpoint", "--checkpoint",
                       str(run / "best.pt"), "--out", str(run / "model.pt")]) == 0
    assert read_checkpoint(run / "model.pt")["metrics"]["epoch"] \
        == read_checkpoint(run / "best.pt")["metrics"]["epoch"]


def test_a_run_stopped_again_says_how_to_export_it_when_it_finishes(isolated, capsys):  # noqa: F811
    run = _early_export(isolated, "--epochs", "3")
    capsys.readouterr()
    last = str(run / "last.pt")
    assert canet_main(["train", "--resume", last, "--max-steps-this-run", "1"]) == 0
    out = capsys.readouterr().out
    assert f"note: {run / 'model.pt'} is not this run's final model" in out
    assert f"resume with --export {run / 'model.pt'} (and the --export-prior-correction " \
           f"you used) to export the run when it finishes" in out
    # The next last.pt records export (null: none), so that resume was the last to know;
    # a run that exports says nothing either.
    assert canet_main(["train", "--resume", last, "--max-steps-this-run", "1"]) == 0
    assert read_checkpoint(last)["train_args"]["export"] is None
    assert "note:" not in capsys.readouterr().out and _step(run) == 5
    assert canet_main(["train", "--resume", last, "--export", str(run / "model.pt")]) == 0
    out = capsys.readouterr().out
    assert "note:" not in out and f"exported {run / 'model.pt'}" in out and _step(run) == 6


def test_resuming_a_finished_run_says_it_is_finished_and_how_to_train_more(
        isolated, capsys):  # noqa: F811
    # It printed 'resumed from RUN/last.pt in epoch 3/2 after step 0/0'.
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run)) == 0
    before = _files(run)
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == (
        f"{run / 'last.pt'}: the run has already finished (2 of 2 epochs done, 4 steps), so "
        f"there is nothing to train; to train more, resume with --epochs above 2 (the poly "
        f"decay is re-aimed at the new end), or start a new run from its weights with "
        f"--init-weights {run / 'best.pt'} and another --out-dir"), out
    assert "resumed from" not in out and err == "" and _files(run) == before
    # What it says works: one more epoch of 2 steps.
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--epochs", "3"]) == 0
    assert _step(run) == 6 and len(log_rows(run)) == 3


def test_a_finished_runs_resume_exports_without_its_data(isolated, capsys):  # noqa: F811
    # The export a Ctrl-C after the last epoch skipped needs no data set.
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run)) == 0
    root.rename(isolated / "moved")
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--export",
                       str(isolated / "shipped.pt")]) == 0
    out = capsys.readouterr().out
    assert "already finished" in out and f"exported {isolated / 'shipped.pt'}" in out
    assert read_checkpoint(isolated / "shipped.pt")["metrics"]["epoch"] \
        == read_checkpoint(run / "best.pt")["metrics"]["epoch"]


def test_a_finished_steps_run_is_told_to_raise_steps(tmp_path):
    from canet_ros.training.resume_notes import finished_run

    last = tmp_path / "run" / "last.pt"
    line = finished_run(last, {"epoch": 2, "global_step": 5}, {"steps": 5, "epochs": 2})
    assert "(5 of 5 steps done)" in line and "resume with --steps above 5 " in line
    line = finished_run(last, {"epoch": 2, "global_step": 4}, {"steps": None, "epochs": 2})
    assert "resume with --epochs above 2 " in line
    assert finished_run(last, {"epoch": 2, "global_step": 5}, {"steps": 6, "epochs": 2}) is None


def test_the_export_note_names_a_checkpoint_the_run_has(tmp_path):
    from canet_ros.training.resume_notes import unrecorded_export

    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "model.pt"):  # no best.pt: the run had no validation set
        (run / name).write_bytes(b"")
    old = {"train_args": {"lr": 0.001}}  # no 'export' key: an older version's run
    line = unrecorded_export(run / "last.pt", old, finished=True)
    assert f"--checkpoint {run / 'last.pt'} --out {run / 'model.pt'}" in line
    (run / "best.pt").write_bytes(b"")
    line = unrecorded_export(run / "last.pt", old, finished=True)
    assert f"--checkpoint {run / 'best.pt'} --out {run / 'model.pt'}" in line


def test_a_run_that_saved_empty_paths_resumes(isolated, capsys):  # noqa: F811
    """Versions before empty paths were refused saved `--export "" --class-map ""` as ''."""
    make_camvid_tree(isolated / "camvid")
    run = Path("runs") / "empty"
    assert canet_main(flags(Path("camvid"), run, "--max-steps-this-run", "1")) == 0
    _as_older_version(run / "last.pt", drop=(), export="", class_map="", replay_root="")
    config = re.sub(r"(?m)^(export|class_map):.*$", r"\1: ''", (run / "config.yaml").read_text())
    assert config.count(": ''") == 2
    (run / "config.yaml").write_text(config)
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(run / "last.pt"),
                       "--max-steps-this-run", "1"]) == 0
    assert "error" not in capsys.readouterr().err and _step(run) == 2
    assert canet_main(["train", "--config", str(run / "config.yaml"),
                       "--out-dir", "runs/again", "--max-steps-this-run", "1"]) == 0
    assert _step(Path("runs") / "again") == 1

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

"""``canet train`` as a user meets it: the resume hint, and a run folder already in use.

Runs are the tiny synthetic ones of test_training_resume.py (one step each).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

from test_training import make_camvid_tree
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.cli import main as canet_main
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


def test_ctrl_c_stops_cleanly_with_status_130(isolated, capsys, monkeypatch):  # noqa: F811
    # The README: "130 interrupted", for every command; a stop at --max-steps-this-run is
    # a finished run (status 0, above), a Ctrl-C is not.
    root = make_camvid_tree(isolated / "camvid")
    real = Trainer._train_step

    def step_then_ctrl_c(self, images, labels):
        out = real(self, images, labels)
        os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "_train_step", step_then_ctrl_c)
    run = isolated / "run"
    assert canet_main(flags(root, run, "--epochs", "3")) == 130
    out = capsys.readouterr().out
    assert "resume with --resume" in out and (run / "last.pt").is_file()
    assert not (run / "model.pt").exists()

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

"""tools/own_camera_study.py keeps the "new camera" drive out of everything it trains on."""
import argparse
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import own_camera_study as study  # noqa: E402


def test_the_replay_leaves_the_drive_out_unless_told_otherwise():
    args = argparse.Namespace(drive="0006R0", train_arg=["--lr=5e-4"])
    assert study.train_args(args) == ["--replay-exclude=0006R0", "--lr=5e-4"]
    own = argparse.Namespace(drive="0006R0", train_arg=["--replay-exclude", "0006R0", "0001TP"])
    assert study.train_args(own) == ["--replay-exclude", "0006R0", "0001TP"]


def test_a_score_on_frames_the_model_saw_stops_the_study(monkeypatch):
    answers = {"--holdout": {"miou": 0.5, "frames": 81, "global_acc": 0.8,
                             "seen_in_training": 0},
               "--split": {"miou": 0.6, "frames": 101, "global_acc": 0.9}}
    monkeypatch.setattr(study, "canet",
                        lambda *a, capture=False: json.dumps(answers[a[3]]))
    assert study.score("start.pt", "0006R0", ["0006R0_f00930"])["rest_miou"] == 0.5
    answers["--holdout"]["seen_in_training"] = 81
    with pytest.raises(SystemExit, match="start.pt: trained on 81 of the 81 frames of 0006R0"):
        study.score("start.pt", "0006R0", ["0006R0_f00930"])
    answers["--holdout"]["seen_in_training"] = 1  # one frame is enough to stop
    with pytest.raises(SystemExit, match="start.pt: trained on 1 of the 81 frames of 0006R0"):
        study.score("start.pt", "0006R0", ["0006R0_f00930"])


def _study(tmp_path, monkeypatch, *train_arg: str) -> tuple:
    """Run the study's main() with every canet command recorded, none run."""
    calls = []

    def canet(*argv, capture=False):
        calls.append(list(argv))
        return ""

    score = {"rest_miou": 0.4, "rest_frames": 2, "rest_global": 0.8, "val_miou": 0.5}
    monkeypatch.setattr(study, "canet", canet)
    monkeypatch.setattr(study, "drive_pairs", lambda root, drive: [])
    monkeypatch.setattr(study, "write_bag", lambda *a, **k: None)
    monkeypatch.setattr(study, "make_dataset", lambda *a: ["0006R0_f00930"])
    monkeypatch.setattr(study, "score", lambda *a: dict(score))
    monkeypatch.setattr(sys, "argv", ["own_camera_study.py", "--start", "s.pt", "--out",
                                      str(tmp_path), "--counts", "5", "--camvid-root",
                                      str(tmp_path), *train_arg])
    assert study.main() == 0
    train = [c for c in calls if c[0] == "train"]
    assert len(train) == 1
    summary = json.loads((tmp_path / "study.json").read_text())
    return train[0], summary["train_args"]


def test_the_train_run_and_the_summary_use_the_replay_exclusion(tmp_path, monkeypatch):
    train, recorded = _study(tmp_path / "a", monkeypatch, "--train-arg=--lr=5e-4")
    tail = ["--no-progress", "--replay-exclude=0006R0", "--lr=5e-4"]
    assert train[-3:] == tail  # the train run
    assert recorded == tail[1:]  # study.json
    # The user's own exclusion is passed as given, not doubled.
    train, recorded = _study(tmp_path / "b", monkeypatch, "--train-arg=--replay-exclude=0006R0")
    assert train[-2:] == ["--no-progress", "--replay-exclude=0006R0"]
    assert recorded == ["--replay-exclude=0006R0"]

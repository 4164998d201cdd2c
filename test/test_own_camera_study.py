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

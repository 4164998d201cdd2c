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

"""An empty path is refused as usage, never read as 'default' or 'none given'.

A script's unset variable (``--checkpoint "$CKPT"``, ``--resume "$LAST"``) used to run the
bundled model in place of the user's file, start a new run instead of resuming, or train
from scratch, each with status 0.
"""
import pytest

from canet_ros.cli import main
from canet_ros.training.config import merge_config

COMMANDS = [
    ["info"],
    ["evaluate"],
    ["export", "--out", "unused.onnx"],
    ["segment-bag", "sample", "--out", "unused"],
    ["extract-frames", "sample", "--out", "unused"],
    ["benchmark"],
]


@pytest.mark.parametrize("value", ["", "  "])
@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_an_empty_checkpoint_is_a_usage_error(tmp_path, monkeypatch, capsys, command, value):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(command + ["--checkpoint", value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --checkpoint: empty" in err and "'default'" in err
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize("flag", ["--resume", "--init-weights", "--class-map", "--data-root",
                                  "--replay-root", "--export"])
def test_an_empty_training_path_is_a_usage_error(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["train", flag, "", "--out-dir", str(tmp_path / "run")])
    assert stop.value.code == 2
    assert f"argument {flag}: an empty path names no file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_empty_path_in_a_config_file_is_refused():
    with pytest.raises(ValueError, match=r"init_weights: expected a path \(not empty\), got ''"):
        merge_config({"init_weights": ""}, {})


def test_a_path_still_passes():
    assert merge_config({"init_weights": "default"}, {}).init_weights == "default"


@pytest.mark.parametrize("flag", ["--data-root", "--save-vis", "--class-colors"])
def test_evaluate_refuses_an_empty_folder_or_file(tmp_path, monkeypatch, capsys, flag):
    """An empty --data-root scored the default CamVid; the others were silently ignored."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", flag, ""])
    assert stop.value.code == 2
    assert f"argument {flag}: an empty path names no file" in capsys.readouterr().err

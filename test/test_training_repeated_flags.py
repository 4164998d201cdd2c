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

"""A repeated list flag of `canet train` adds up, as its help promises.

`--val-sets a=... --val-sets b=...` used to keep only `b`: best.pt was picked on one set
without a word. The same held for --train-include/--train-exclude/--replay-exclude.
"""
import argparse

import pytest

from canet_ros.training.config import add_config_arguments, config_from_args


def _config(*argv: str):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_repeated_val_sets_keep_every_set():
    cfg = _config("--val-sets", "a=val:0016E5_079", "--val-sets", "b=val:0016E5_08")
    assert cfg.val_sets == [{"name": "a", "split": "val", "include": ["0016E5_079"]},
                            {"name": "b", "split": "val", "include": ["0016E5_08"]}]


def test_one_flag_with_several_sets_is_unchanged():
    cfg = _config("--val-sets", "a=val", "b=train:0006R0")
    assert [s["name"] for s in cfg.val_sets] == ["a", "b"]


def test_a_bare_val_sets_flag_still_means_none(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("val_sets:\n  - {name: x, split: val}\n")
    assert _config("--config", str(config), "--val-sets").val_sets == []
    # a flag replaces the file's list as a whole: no mix of file and flags
    cfg = _config("--config", str(config), "--val-sets", "a=val", "--val-sets", "b=val")
    assert [s["name"] for s in cfg.val_sets] == ["a", "b"]


@pytest.mark.parametrize("flag, field", [("--train-include", "train_include"),
                                         ("--train-exclude", "train_exclude"),
                                         ("--replay-exclude", "replay_exclude")])
def test_repeated_prefix_flags_add_up(flag, field):
    cfg = _config(flag, "0001TP", flag, "0006R0", "0016E5")
    assert getattr(cfg, field) == ["0001TP", "0006R0", "0016E5"]

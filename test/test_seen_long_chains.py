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

"""seen_in_training through fine-tune chains longer than any fixed depth, and their loops."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.data.seen import count_seen, count_start_seen, start_record
from canet_ros.evaluation import seen_in_training

LEVELS = 1500  # past Python's recursion limit (1000 frames): a recursive walk would fail


def _frame(k: int) -> Path:
    return Path(f"cv/train/0006R0_{k:05d}.png")


def _level_args(k: int) -> dict:
    """Return the train_args of chain level ``k``: CamVid train, frame k only."""
    return {"dataset": "camvid", "train_split": "train", "train_include": [f"0006R0_{k:05d}"]}


def _nested(levels: int) -> dict:
    """Return the record a chain of ``levels`` runs stores: level 0 the first, deepest."""
    record: dict = {}
    for k in range(levels):
        record = {"start": {"checkpoint": f"../run{k}/best.pt", "train_args": _level_args(k),
                            "lineage": record}}
    return record


def test_every_level_of_a_deep_stored_chain_counts():
    assert LEVELS > sys.getrecursionlimit()
    own = {"dataset": "camvid", "train_split": "val"}  # the last run: no train frame itself
    lineage = _nested(LEVELS)
    # Level k trained on frame k alone: the deepest (first) levels' frames, a middle one's
    # and the last one's are seen; frames past the chain's no level trained on.
    seen = [_frame(k) for k in (*range(8), LEVELS // 2, LEVELS - 1)]
    unseen = [_frame(k) for k in range(LEVELS, LEVELS + 3)]
    assert seen_in_training(own, seen + unseen, None, lineage) == len(seen)
    assert count_seen(own, seen[:1], None, lineage) == 1  # the first, deepest level's
    assert count_seen(own, unseen, None, lineage) == 0
    # The training-time --holdout warning walks the same chain from the run's start.
    assert count_start_seen(lineage["start"], seen + unseen) == len(seen)
    assert count_start_seen(lineage["start"], seen[:7]) == 7


def test_a_record_that_contains_itself_ends():
    # A pickle can nest a dict in itself; a crafted checkpoint's record must not hang.
    looped: dict = {"start": {"checkpoint": "x.pt", "train_args": _level_args(3)}}
    looped["start"]["lineage"] = looped
    own = {"dataset": "camvid", "train_split": "val"}
    assert count_seen(own, [_frame(k) for k in range(5)], None, looped) == 1  # frame 3


def _old_chain(folder: Path, levels: int) -> Path:
    """Write ``levels`` checkpoints made before lineages, each started from the previous one."""
    previous = None
    for k in range(levels):
        args = {**_level_args(k), **({"init_weights": f"../c{k - 1}/best.pt"} if k else {})}
        path = folder / f"c{k}" / "best.pt"
        meta = build_metadata("mobilenetv2", CAMVID, train_args=args)
        previous = save_checkpoint(path, torch.nn.Linear(1, 1), meta)
    assert previous is not None
    return previous


def test_a_long_chain_of_files_without_the_record_is_traced_to_its_start(tmp_path):
    levels = 40  # more than the 32 files the trace used to stop at
    last = _old_chain(tmp_path, levels)
    frames = [_frame(k) for k in range(levels + 2)]
    own = {"dataset": "camvid", "train_split": "val", "init_weights": "../c39/best.pt"}
    run = tmp_path / "run"
    # Traced from the files at evaluation time (an older checkpoint: no lineage).
    assert seen_in_training(own, frames, run) == levels
    # Recorded when a run starts from the last one, then the files go: still every level.
    record = start_record(str(last))
    for k in range(levels):
        os.unlink(tmp_path / f"c{k}" / "best.pt")
    assert count_start_seen(record, frames) == levels
    assert seen_in_training(own, frames, run, {"start": record}) == levels


def test_a_chain_of_files_at_different_depths_resolves_each_path_from_its_own_folder(
        tmp_path):
    # Each init_weights is relative to the folder of the checkpoint that records it:
    # a/best.pt <- b/sub/best.pt ("../../a/best.pt") <- c/d/e/best.pt ("../../../b/sub/...")
    # <- the evaluated run in run/ ("../c/d/e/best.pt"). Read from run/, b's path would
    # name tmp_path's parent, and a's frame would count as held out.
    chain = [("a", None), ("b/sub", "../../a/best.pt"), ("c/d/e", "../../../b/sub/best.pt")]
    for k, (folder, init) in enumerate(chain):
        args = {**_level_args(k), **({"init_weights": init} if init else {})}
        meta = build_metadata("mobilenetv2", CAMVID, train_args=args)
        save_checkpoint(tmp_path / folder / "best.pt", torch.nn.Linear(1, 1), meta)
    own = {"dataset": "camvid", "train_split": "val", "init_weights": "../c/d/e/best.pt"}
    frames = [_frame(k) for k in range(len(chain) + 1)]  # the last: no run trained on it
    run = tmp_path / "run"
    assert count_seen(own, frames, run) == len(chain)
    assert count_seen(own, frames[:1], run) == 1  # a's, two folders up from b's file
    assert seen_in_training(own, frames, run) == len(chain)
    # A record read by name only (no train_args) is opened from the run's folder too.
    assert count_start_seen({"checkpoint": "../c/d/e/best.pt"}, frames, run) == len(chain)
    assert count_start_seen(start_record(str(tmp_path / "c/d/e/best.pt")), frames) == \
        len(chain)

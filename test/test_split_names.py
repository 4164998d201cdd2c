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


"""Joined splits (``train+val``): each split once, no empty part.

A split named twice, or a folder's ``all`` (train and val together) joined to another,
would feed the same frames twice: training would weigh them double and evaluation would
count them twice. An empty part (``val+``) is a typo, not a split.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli import main
from canet_ros.data import DatasetError, build_dataset, write_dataset
from canet_ros.models import build_canet

STEMS = ["f0", "f1", "f2", "f3", "f4"]


def folder(root: Path) -> Path:
    """Write five labelled 8x6 frames: f0-f2 train, f3-f4 val (CamVid's classes)."""
    items = [(s, np.full((6, 8, 3), 30 * i, np.uint8), np.full((6, 8), i, np.uint8))
             for i, s in enumerate(STEMS)]
    return write_dataset(root, CAMVID, items, {"train": STEMS[:3], "val": STEMS[3:]})


def names(ds) -> list:
    return [ds.name(i) for i in range(len(ds))]


def test_joined_folder_splits_hold_each_frame_once(tmp_path):
    root = folder(tmp_path / "d")
    assert names(build_dataset("folder", root, "train+val")) == STEMS
    assert names(build_dataset("folder", root, "val+train")) == STEMS[3:] + STEMS[:3]
    assert names(build_dataset("folder", root, "all")) == STEMS


@pytest.mark.parametrize("split, why", [
    ("train+train", "names 'train' twice"),
    ("val+train+val", "names 'val' twice"),
    ("all+all", "names 'all' twice"),
    ("all+val", "joins 'all'"),
    ("train+all", "joins 'all'"),
    ("val+", "has an empty part"),
    ("+val", "has an empty part"),
    ("train++val", "has an empty part"),
    ("+", "has an empty part"),
])
def test_folder_refuses_repeated_or_empty_parts(tmp_path, split, why):
    root = folder(tmp_path / "d")
    with pytest.raises(DatasetError) as exc:
        build_dataset("folder", root, split)
    text = str(exc.value)
    assert text.startswith(f"split {split!r} {why}") and "\n" not in text


@pytest.mark.parametrize("split", ["train+train", "val+", "test+val+test"])
def test_camvid_and_cityscapes_refuse_them_before_reading(tmp_path, split):
    # The folder is empty: the split string alone is refused, before any file is looked for.
    for name in ("camvid", "cityscapes"):
        with pytest.raises(DatasetError, match="^" + re.escape(f"split {split!r} ")):
            build_dataset(name, tmp_path, split)


def test_camvid_all_is_no_split(tmp_path):
    with pytest.raises(DatasetError, match="unknown CamVid split 'all'"):
        build_dataset("camvid", tmp_path, "all+val")


def test_cli_evaluate_exits_1_naming_the_split(tmp_path, capsys):
    root = folder(tmp_path / "d")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    meta = build_metadata("mobilenetv2", CAMVID, mean=[0.5] * 3, std=[0.25] * 3,
                          input_size=(8, 6))
    ckpt = save_checkpoint(tmp_path / "m.pt", build_canet("mobilenetv2", 11).eval(), meta)
    argv = ["evaluate", "--dataset", "folder", "--data-root", str(root), "--checkpoint",
            str(ckpt), "--device", "cpu", "--json"]
    assert main(argv + ["--split", "train+val"]) == 0
    assert '"frames": 5' in capsys.readouterr().out
    for split in ("all+val", "val+"):
        assert main(argv + ["--split", split]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"canet evaluate: error: split {split!r} ") and err.count("\n") == 1


def test_cli_train_exits_1_naming_the_split(tmp_path, capsys):
    root = folder(tmp_path / "d")
    assert main(["train", "--dataset", "folder", "--data-root", str(root), "--train-split",
                 "train+train", "--epochs", "1", "--batch-size", "2", "--crop-size", "8", "6",
                 "--base-size", "8", "6", "--input-size", "8", "6", "--device", "cpu",
                 "--workers", "0",
                 "--out-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == ("canet train: error: split 'train+train' names 'train' twice, which would "
                   "count its frames twice\n")

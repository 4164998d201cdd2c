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

"""Thousands of problems of one kind: 50 listed, the rest counted, the consequence first."""
from __future__ import annotations

import shutil

import pytest
from test_own_dataset import THREE, dataset, item, problems

from canet_ros.cli import main
from canet_ros.data import DatasetProblems, FolderDataset, check_dataset, write_dataset

LISTED = 50  # per kind of problem (docs: "the count of the rest is still given")


def test_a_train_list_of_thousands_of_wrong_names(tmp_path, capsys):
    root = dataset(tmp_path / "d", n=6)
    (root / "train.txt").write_text("".join(f"g{i:06d}\n" for i in range(5000)))
    found = problems(root)
    # No listed name is a frame: train is empty, val the 6 frames not in train.txt.
    assert found[0] == (f"{root}: the train split is empty (6 frames with image and mask, "
                        f"split by train.txt)")
    assert found[1:LISTED + 1] == [f"{root / 'train.txt'}:{i + 1}: 'g{i:06d}' is not a frame "
                                   f"in images/" for i in range(LISTED)]
    assert found[LISTED + 1:] == [f"... and {5000 - LISTED} more entries of train.txt that are "
                                  f"not frames in images/"]
    # The command prints those 52 lines, not 5001, under a header counting all 5001.
    assert main(["dataset", "check", str(root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"canet dataset: error: {root}: {5000 + 1} problems"
    assert err[1:] == [f"  - {line}" for line in found]
    # Training reads the same index: its error is as short.
    with pytest.raises(DatasetProblems) as exc:
        FolderDataset(root, "train")
    assert len(exc.value.problems) == LISTED + 1


def test_thousands_of_frames_saved_twice(tmp_path):
    twins = 100  # frame_00 .. frame_99: sorted by name as by number
    root = write_dataset(tmp_path / "d", THREE,
                         [(f"frame_{i:02d}", *item(1)[1:]) for i in range(twins)])
    for image in sorted((root / "images").iterdir()):
        shutil.copy(image, image.with_suffix(".bmp"))  # f.bmp sorts first, so f.png is extra
    found = problems(root)
    # Nothing else is wrong (every frame has its mask): 50 lines, then the count of the rest.
    assert found == [f"{root / 'images'}/frame_{i:02d}.png: same name as frame_{i:02d}.bmp; "
                     f"one file per frame" for i in range(LISTED)] + [
        f"... and {twins - LISTED} more files with the same name as another (one file per "
        f"frame)"]
    with pytest.raises(DatasetProblems) as exc:
        check_dataset(root)
    assert str(exc.value).splitlines()[0] == f"{root}: {twins} problems"  # all, not 51


def test_a_folder_where_no_frame_has_both_an_image_and_a_mask(tmp_path, capsys):
    none = f"{tmp_path / 'empty'}: no frame has both an image and a mask"
    empty = write_dataset(tmp_path / "empty", THREE, [])  # classes.yaml, empty folders
    # No frame at all: that one line, not "the train split is empty" and "val" beside it.
    assert problems(empty) == [none]
    # Images whose masks have other names: the files first (capped), then what they lead to.
    stems = [f"frame_{i:02d}" for i in range(LISTED + 2)]
    root = write_dataset(tmp_path / "d", THREE, [(s, *item(1)[1:]) for s in stems])
    for mask in (root / "masks").iterdir():
        mask.rename(mask.with_name(f"m{mask.name}"))
    assert problems(root) == [
        f"{root / 'images' / s}.png: image without a mask ({root / 'masks' / s}.png)"
        for s in stems[:LISTED]] + [
        "... and 2 more images without masks"] + [
        f"{root / 'masks' / 'm'}{s}.png: mask without an image (no m{s}.* in the images "
        f"folder)" for s in stems[:LISTED]] + [
        "... and 2 more masks without images",
        f"{root}: no frame has both an image and a mask"]
    assert main(["dataset", "check", str(empty)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"  - {none}"

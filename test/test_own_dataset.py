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

"""A dataset of your own: the folder layout, its splits, and each problem the check names."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from canet_ros.classes import CAMVID, ClassSet
from canet_ros.cli import main
from canet_ros.data import (
    DATASETS,
    DatasetError,
    DatasetProblems,
    EmptySplitError,
    FolderDataset,
    SplitRule,
    build_dataset,
    check_dataset,
    dataset_class_set,
    load_classes,
    write_dataset,
)

THREE = ClassSet("three", ("road", "car", "person"), ((128, 64, 128), (0, 0, 142),
                                                      (220, 20, 60)), 255)


def item(i: int, size=(16, 12)) -> tuple:
    w, h = size
    image = np.full((h, w, 3), 10 * i, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 1
    mask[0, 0] = 2
    mask[h - 1, w - 1] = 255
    return f"frame_{i:02d}", image, mask


def dataset(root: Path, n: int = 6, **kw) -> Path:
    return write_dataset(root, THREE, [item(i) for i in range(n)], **kw)


def problems(root: Path) -> list:
    with pytest.raises(DatasetProblems) as exc:
        check_dataset(root)
    return exc.value.problems


# -- layout and splits ---------------------------------------------------------------------
def test_written_folder_reads_back(tmp_path):
    root = dataset(tmp_path / "d")
    fields = [getattr(THREE, k) for k in ("names", "colors", "ignore_index")]
    assert load_classes(root / "classes.yaml") == ClassSet("three", *fields)
    ds = FolderDataset(root, "all")
    assert ds.root == root and ds.split == "all" and ds.class_set.names == THREE.names
    for i in range(6):
        name, image, mask = item(i)
        assert ds.name(i) == name
        got_image, got_mask = ds[i]
        np.testing.assert_array_equal(got_image, image)
        np.testing.assert_array_equal(got_mask, mask)


def test_split_rule_every_kth_by_name_to_val(tmp_path):
    root = dataset(tmp_path / "d", n=11)
    # Default every 5th: positions 4 and 9 (0-based) go to val.
    assert [FolderDataset(root, "val").name(i) for i in range(2)] == ["frame_04", "frame_09"]
    assert len(FolderDataset(root, "train")) == 9
    root3 = dataset(tmp_path / "d3", n=7, split_rule=SplitRule(3))
    ds = FolderDataset(root3, "val")
    assert [ds.name(i) for i in range(len(ds))] == ["frame_02", "frame_05"]


def test_split_lists(tmp_path):
    root = dataset(tmp_path / "d", split_lists={"train": ["frame_00", "frame_01"],
                                                "val": ["frame_05"]})
    assert [p[0].stem for p in FolderDataset(root, "train").pairs] == ["frame_00", "frame_01"]
    assert [p[0].stem for p in FolderDataset(root, "val").pairs] == ["frame_05"]
    # Only val.txt: train is every other frame.
    (root / "train.txt").unlink()
    assert len(FolderDataset(root, "train")) == 5
    assert [p[0].stem for p in FolderDataset(root, "train", include=["frame_0"],
                                             exclude=["frame_01"]).pairs] == \
        ["frame_00", "frame_02", "frame_03", "frame_04"]


def test_check_summary_counts(tmp_path, capsys):
    root = dataset(tmp_path / "d", n=5)
    summary = check_dataset(root)
    # Per frame 16x12 = 192 px: 96 left columns are car (one of them person at (0, 0)),
    # 96 right road (one of them ignored at the corner).
    assert summary.frames == {"train": 4, "val": 1}
    assert summary.pixels == {"road": 5 * 95, "car": 5 * 95, "person": 5}
    assert summary.ignored_pixels == 5 and summary.sizes == {"16x12": 5}
    assert main(["dataset", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "frames: train 4, val 1" in out and "person" in out


def test_build_dataset_and_class_set(tmp_path):
    root = dataset(tmp_path / "d")
    assert "folder" in DATASETS
    ds = build_dataset("folder", root, "train")
    assert isinstance(ds, FolderDataset) and len(ds) == 5
    assert len(build_dataset("folder", root, "train+val")) == 6
    assert dataset_class_set("folder", root) == load_classes(root)
    assert dataset_class_set("camvid", None) == CAMVID
    with pytest.raises(DatasetError, match="needs its folder"):
        build_dataset("folder", None, "train")


def test_build_dataset_runs_the_check_first(tmp_path):
    root = dataset(tmp_path / "d")
    cv2.imwrite(str(root / "masks" / "frame_05.png"), np.full((12, 16), 7, np.uint8))
    FolderDataset(root, "train")  # the layout alone is sound; the bad ids are in a file
    with pytest.raises(DatasetProblems, match=r"frame_05.png: ids \[7\] outside the 3 classes"):
        build_dataset("folder", root, "train")


# -- each problem its own clear message ----------------------------------------------------
def test_image_without_mask_and_mask_without_image(tmp_path):
    root = dataset(tmp_path / "d", n=7)
    (root / "masks" / "frame_01.png").unlink()
    (root / "images" / "frame_02.png").unlink()
    found = problems(root)
    assert found == [
        f"{root / 'images' / 'frame_01.png'}: image without a mask "
        f"({root / 'masks'}/frame_01.png)",
        f"{root / 'masks' / 'frame_02.png'}: mask without an image (no frame_02.* in the "
        f"images folder)"]


def test_mismatched_sizes(tmp_path):
    root = dataset(tmp_path / "d")
    cv2.imwrite(str(root / "masks" / "frame_03.png"), np.zeros((10, 16), np.uint8))
    assert problems(root) == [f"{root / 'masks' / 'frame_03.png'}: mask is 16x10 but its "
                              f"image {root / 'images' / 'frame_03.png'} is 16x12"]


def test_ids_outside_the_class_list(tmp_path):
    root = dataset(tmp_path / "d")
    mask = item(3)[2]
    mask[2, 2], mask[3, 3] = 3, 254
    cv2.imwrite(str(root / "masks" / "frame_03.png"), mask)
    assert problems(root) == [f"{root / 'masks' / 'frame_03.png'}: ids [3, 254] outside the 3 "
                              f"classes (0-2, ignore 255)"]


def test_colour_mask_in_masks_folder(tmp_path):
    root = dataset(tmp_path / "d")
    cv2.imwrite(str(root / "masks" / "frame_00.png"), np.full((12, 16, 3), (1, 2, 3), np.uint8))
    (found,) = problems(root)
    assert found.startswith(f"{root / 'masks' / 'frame_00.png'}: a colour image;")


@pytest.mark.parametrize("text, message", [
    ("names: [a, b]\ncolors: [[1, 2, 3]]\n", "2 names but 1 colors"),
    ("names: []\ncolors: []\n", "'names' must be a non-empty list"),
    ("names: [a, a]\ncolors: [[1, 2, 3], [4, 5, 6]]\n", "lists a class more than once"),
    ("names: [a]\ncolors: [[1, 2, 300]]\n", "not [r, g, b] with 0-255 integers"),
    ("names: [a, b]\ncolors: [[1, 2, 3], [4, 5, 6]]\nignore_index: 1\n",
     "'ignore_index' 1 is the id of class 1"),
    ("names: [a]\ncolors: [[1, 2, 3]]\nsplit: {val_every: 1}\n", "'split' must be"),
    ("names: [a\n", "not valid YAML"),
    ("- a\n", "must be a mapping"),
    ("names: [a]\ncolours: [[1, 2, 3]]\n", "unknown keys ['colours']"),
], ids=["count", "empty", "twice", "range", "ignore", "split", "yaml", "list", "typo"])
def test_malformed_classes_yaml(tmp_path, text, message):
    root = dataset(tmp_path / "d")
    (root / "classes.yaml").write_text(text)
    found = problems(root)
    assert any(p.startswith(f"{root / 'classes.yaml'}: ") and message in p for p in found), found
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_classes(root / "classes.yaml")


def test_missing_classes_yaml(tmp_path):
    root = dataset(tmp_path / "d")
    (root / "classes.yaml").unlink()
    assert problems(root) == [f"{root / 'classes.yaml'}: missing (the dataset's class names and "
                              f"colours)"]


def test_empty_split(tmp_path):
    root = dataset(tmp_path / "d", n=4)  # every 5th frame to val: none
    assert problems(root) == [f"{root}: the val split is empty (4 frames with image and mask, "
                              f"split by the split rule val_every: 5, frames 5, 10, ... by "
                              f"name to val)"]
    with pytest.raises(EmptySplitError):
        FolderDataset(root, "val")
    root = dataset(tmp_path / "l", split_lists={"val": [f"frame_{i:02d}" for i in range(6)]})
    assert problems(root) == [f"{root}: the train split is empty (6 frames with image and "
                              f"mask, split by the frames not in val.txt)"]


def test_list_names_that_are_not_frames(tmp_path):
    root = dataset(tmp_path / "d", split_lists={"train": ["frame_00", "frame_99"],
                                                "val": ["frame_00"]})
    found = problems(root)
    assert f"{root / 'train.txt'}:2: 'frame_99' is not a frame in images/" in found
    assert f"{root}: frames in both train.txt and val.txt: ['frame_00']" in found


def test_every_problem_listed_and_exit_1(tmp_path, capsys):
    root = dataset(tmp_path / "d")
    (root / "masks" / "frame_01.png").unlink()
    cv2.imwrite(str(root / "masks" / "frame_03.png"), np.zeros((10, 16), np.uint8))
    (root / "images" / "frame_04.png").write_bytes(b"not a png")
    assert main(["dataset", "check", str(root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"canet dataset: error: {root}: 3 problems"
    assert err[1:] == [
        f"  - {root / 'images' / 'frame_01.png'}: image without a mask "
        f"({root / 'masks'}/frame_01.png)",
        f"  - {root / 'masks' / 'frame_03.png'}: mask is 16x10 but its image "
        f"{root / 'images' / 'frame_03.png'} is 16x12",
        f"  - {root / 'images' / 'frame_04.png'}: cannot decode (corrupt or not an image)"]


def test_not_a_folder(tmp_path, capsys):
    assert main(["dataset", "check", str(tmp_path / "none")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err


def test_a_zip_given_as_the_dataset_says_to_unzip_it(tmp_path, capsys):
    # A CVAT export as downloaded: "not found" sent users looking for a missing folder.
    import zipfile

    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as zf:
        zf.writestr("labelmap.txt", "# label:color_rgb:parts:actions\n")
    assert main(["dataset", "check", str(export)]) == 1
    assert capsys.readouterr().err == (f"canet dataset: error: {export}: a file, not a dataset "
                                       f"folder; unzip it and give the folder\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a dataset")
    assert main(["dataset", "check", str(notes)]) == 1
    assert capsys.readouterr().err.endswith(f"{notes}: a file, not a dataset folder\n")

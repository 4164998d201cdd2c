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


"""A folder split whose masks are the ignore id everywhere: found before training, named.

Its loss would divide by zero labelled pixels (NaN), its mIoU has no class to average,
and the ENet class weights have no pixel shares to come from.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canet_ros.classes import ClassSet
from canet_ros.cli import main
from canet_ros.data import (
    DatasetError,
    DatasetProblems,
    build_dataset,
    check_dataset,
    write_dataset,
)
from canet_ros.training.losses import enet_class_weights

IGNORE = 255
TWO = ClassSet("two", ("road", "car"), ((128, 64, 128), (0, 0, 142)), IGNORE)


def frame(stem: str, labelled: int) -> tuple:
    """Make an 8x6 frame whose mask labels its first ``labelled`` pixels road, the rest ignored."""
    mask = np.full((6, 8), IGNORE, np.uint8)
    mask.reshape(-1)[:labelled] = 0
    return stem, np.full((6, 8, 3), 40, np.uint8), mask


def folder(root: Path, labelled: dict, train: list, val: list) -> Path:
    """Write frames (stem -> labelled pixel count), split by train.txt / val.txt."""
    return write_dataset(root, TWO, [frame(s, n) for s, n in labelled.items()],
                         {"train": train, "val": val})


def test_check_names_each_unlabelled_split(tmp_path):
    root = folder(tmp_path / "allign", {"a": 0, "b": 0, "c": 0}, ["a", "b"], ["c"])
    with pytest.raises(DatasetProblems) as exc:
        check_dataset(root)
    found = exc.value.problems
    assert len(found) == 2
    assert found[0].startswith(f"{root}: the train split has no labelled pixel")
    assert "2 masks" in found[0] and f"ignore id {IGNORE}" in found[0]
    assert found[1].startswith(f"{root}: the val split has no labelled pixel")
    assert "1 mask " in found[1]


def test_one_unlabelled_split_only_that_one(tmp_path):
    root = folder(tmp_path / "d", {"a": 5, "b": 0, "c": 0}, ["a", "b"], ["c"])
    with pytest.raises(DatasetProblems) as exc:
        check_dataset(root)
    assert [p.split(" has ")[0] for p in exc.value.problems] == [f"{root}: the val split"]


def test_a_single_labelled_pixel_is_enough(tmp_path):
    root = folder(tmp_path / "d", {"a": 0, "b": 1, "c": 1}, ["a", "b"], ["c"])
    summary = check_dataset(root)
    assert summary.pixels == {"road": 2, "car": 0}
    assert summary.ignored_pixels == 3 * 48 - 2


def test_build_refuses_a_filtered_split_without_labels(tmp_path):
    # The folder passes its check; the include filter leaves only unlabelled train frames.
    root = folder(tmp_path / "d", {"lab_1": 3, "lab_2": 3, "un_1": 0, "un_2": 0, "v": 2},
                  ["lab_1", "lab_2", "un_1", "un_2"], ["v"])
    check_dataset(root)
    with pytest.raises(DatasetError) as exc:
        build_dataset("folder", root, "train", include=["un_"])
    assert str(exc.value) == (f"{root}: the train split (include=['un_'] exclude=[]) has no "
                              f"labelled pixel: every pixel of its 2 masks is the ignore id "
                              f"{IGNORE} (label the frames, or check ignore_index in "
                              f"classes.yaml)")
    with pytest.raises(DatasetError, match="train split .* has no labelled pixel"):
        build_dataset("folder", root, "train", exclude=["lab_"])
    assert len(build_dataset("folder", root, "train", include=["un_1", "lab_1"])) == 2


def test_joined_split_needs_labels_somewhere_not_in_each_part(tmp_path):
    # train holds only unlabelled "x" frames, val a labelled one: together they can train.
    root = folder(tmp_path / "d", {"a": 4, "b": 4, "x_1": 0, "x_2": 4},
                  ["a", "b", "x_1"], ["x_2"])
    assert len(build_dataset("folder", root, "train+val", include=["x_"])) == 2
    with pytest.raises(DatasetError, match=r"the train\+val split .* 1 mask "):
        build_dataset("folder", root, "train+val", include=["x_1"])


def test_cli_check_and_train_exit_1_naming_folder_and_split(tmp_path, capsys):
    root = folder(tmp_path / "allign", {"a": 0, "b": 0, "c": 0}, ["a", "b"], ["c"])
    assert main(["dataset", "check", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("canet dataset: error: ")
    assert f"{root}: the train split has no labelled pixel" in err
    for weighting in ("enet", "none"):  # none used to train to a NaN loss and exit 0
        out_dir = tmp_path / f"run_{weighting}"
        assert main(["train", "--dataset", "folder", "--data-root", str(root), "--epochs", "1",
                     "--batch-size", "2", "--crop-size", "8", "6", "--base-size", "8", "6",
                     "--input-size", "8", "6", "--device", "cpu", "--workers", "0",
                     "--out-dir", str(out_dir), "--no-progress",
                     "--class-weighting", weighting]) == 1
        err = capsys.readouterr().err
        assert err.startswith("canet train: error: ")
        assert f"{root}: the train split has no labelled pixel" in err
        assert not (out_dir / "last.pt").exists()


def test_class_weights_error_names_its_labels():
    with pytest.raises(ValueError) as exc:
        enet_class_weights(np.zeros(3), source="folder d split 'train'")
    assert str(exc.value).startswith("folder d split 'train': no labelled pixels")
    assert enet_class_weights(np.array([1, 0])) == pytest.approx([1 / np.log(2.02),
                                                                  1 / np.log(1.02)])

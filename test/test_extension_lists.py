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

"""Every dataset in ``canet_ros.data.DATASETS`` reaches each place that dispatches on it.

A contributor adding a dataset (docs/design.md, Extending) lists it in DATASETS; each
dispatch must then have its case, and one without must say that it is missing there,
not call the listed dataset unknown, raise a bare KeyError, or guess its layout.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import canet_ros.data as data
from canet_ros.classes import CAMVID, CITYSCAPES
from canet_ros.data.seen import count_seen
from canet_ros.errors import DatasetError

NEW = "kitti"  # listed in DATASETS, wired nowhere
NOT_WIRED = "listed in canet_ros.data.DATASETS but not wired into"


@pytest.fixture
def listed_only(monkeypatch):
    monkeypatch.setattr(data, "DATASETS", data.DATASETS + (NEW,))


def test_class_set_names_the_missing_case(listed_only):
    with pytest.raises(AssertionError, match=f"{NOT_WIRED} canet_ros.data.dataset_class_set"):
        data.dataset_class_set(NEW)


def test_a_missing_default_root_names_the_missing_case(listed_only, tmp_path):
    with pytest.raises(AssertionError, match=f"{NOT_WIRED} canet_ros.data._ENV_ROOTS"):
        data._no_default_root(NEW, tmp_path / "nothing", "--data-root")
    with pytest.raises(AssertionError, match=f"{NOT_WIRED} canet_ros.data._ENV_ROOTS"):
        data.build_dataset(NEW, None, "train")


@pytest.mark.parametrize("split", ["train", "train+val"])
def test_building_a_split_names_the_missing_case(listed_only, tmp_path, split):
    with pytest.raises(AssertionError, match=f"{NOT_WIRED} canet_ros.data._one_split"):
        data.build_dataset(NEW, tmp_path, split)


def test_seen_refuses_a_layout_it_does_not_know(listed_only):
    frames = [Path("kitti/training/image_2/000000.png")]
    with pytest.raises(AssertionError, match=f"{NOT_WIRED} canet_ros.data.seen"):
        count_seen({"dataset": NEW, "train_split": "training"}, frames)
    with pytest.raises(AssertionError, match=f"{NOT_WIRED} canet_ros.data.seen"):
        count_seen({"dataset": "camvid", "train_split": "train", "replay_dataset": NEW,
                    "replay_ratio": 0.5}, frames)


def test_a_dataset_of_another_version_counts_as_not_recorded():
    """Count a later version's or a fork's dataset as unrecorded: no guess, no error.

    An error ended the evaluation or segment-bag run whose report asked, after it scored.
    """
    frames = [Path("train/x.png")]
    assert count_seen({"dataset": NEW, "train_split": "train"}, frames) is None
    assert count_seen({"dataset": "camvid", "train_split": "train", "replay_dataset": NEW,
                       "replay_ratio": 0.5}, frames) is None
    # A CamVid run's own count is unchanged beside it.
    assert count_seen({"dataset": "camvid", "train_split": "train"}, frames) == 1


def test_an_unknown_dataset_is_still_called_unknown():
    with pytest.raises(DatasetError, match="unknown dataset 'kitti'; choose one of"):
        data.dataset_class_set(NEW)
    with pytest.raises(DatasetError, match="unknown dataset 'kitti'; choose one of"):
        data.build_dataset(NEW, None, "train")


@pytest.mark.parametrize("name", data.DATASETS)
def test_every_listed_dataset_is_wired_everywhere(name, tmp_path):
    """Each real entry reaches its own case in every dispatch (errors: its data, not wiring)."""
    classes = {"camvid": CAMVID, "cityscapes": CITYSCAPES}
    if name in classes:
        assert data.dataset_class_set(name) == classes[name]
        assert data._no_default_root(name, tmp_path, "--data-root").startswith(
            f"{tmp_path}: {name} data folder not found")
    else:  # folder: its classes are its own, read from the folder it needs
        with pytest.raises(DatasetError, match="needs its folder"):
            data.dataset_class_set(name)
    data.default_data_root(name)
    for split in ("train", "train+val"):
        # An empty folder: the dataset's own reader refuses it, as for a user's bad path.
        with pytest.raises(DatasetError):
            data.build_dataset(name, tmp_path, split)
    # A frame of each dataset's own layout, in the run's split and in another.
    frames = {"camvid": ["cv/train/0001TP_000.png", "cv/val/0016E5_000.png"],
              "cityscapes": ["cs/leftImg8bit/train/aachen/a_leftImg8bit.png",
                             "cs/leftImg8bit/val/lindau/b_leftImg8bit.png"]}
    if name in frames:
        assert count_seen({"dataset": name, "train_split": "train"}, frames[name]) == 1


def test_every_node_parameter_reaches_the_node_config():
    """A ParamSpec the node declares but NodeConfig lacks would be accepted and never used."""
    import dataclasses

    from canet_ros.ros.params import SPECS, NodeConfig

    assert [f.name for f in dataclasses.fields(NodeConfig)] == [s.name for s in SPECS]

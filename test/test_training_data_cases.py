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


"""Training data beyond CamVid: folder replay, mixed frame sizes, seen frames, held-out cities.

Replay from a dataset folder, frames of mixed sizes in validation and evaluation, which
frames a run trained on, and a Cityscapes city held out.
"""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from test_data import _cityscapes_tree
from test_evaluate import _tiny_checkpoint, hand_confusion, reference_predictions, seeded_model
from test_own_dataset import THREE, item

from canet_ros.classes import CAMVID, ClassSet
from canet_ros.data import EvalTransform, FolderDataset, write_dataset
from canet_ros.evaluation import evaluate_checkpoint, seen_in_training
from canet_ros.training import merge_config
from canet_ros.training.config import portable_train_args
from canet_ros.training.data_setup import build_data
from canet_ros.training.validate import run_validation

# THREE's classes with car dropped and the rest reordered: old road 0 -> 1, person 2 -> 0.
NEW = ClassSet("new", ("person", "road"), ((220, 20, 60), (128, 64, 128)), 255)
MEAN, STD = [0.5] * 3, [0.25] * 3


# -- replay from a dataset folder -----------------------------------------------------------
def test_replay_from_a_folder_maps_its_labels_to_the_new_classes(tmp_path):
    old = write_dataset(tmp_path / "old", THREE, [item(i) for i in range(5)])
    own = [(f"own_{i}", np.zeros((12, 16, 3), np.uint8), np.zeros((12, 16), np.uint8))
           for i in range(5)]  # every pixel person (new id 0)
    new = write_dataset(tmp_path / "new", NEW, own)
    cfg = merge_config({}, {"dataset": "folder", "data_root": str(new), "val_sets": [],
                            "out_dir": str(tmp_path / "run"), "replay_dataset": "folder",
                            "replay_root": str(old), "replay_ratio": 1.0, "cache": False})
    data = build_data(cfg, verbose=False)
    assert (data.train.count(0), data.train.count(1)) == (4, 4)  # frames 0-3 train, 4 val
    _, raw = item(0)[1:]  # old ids: car left half, road right half, person and 255 corners
    want = np.full_like(raw, 255)  # car is no new class: ignored
    want[raw == 0], want[raw == 2] = 1, 0
    assert np.array_equal(data.train.load(4)[1], want)
    # ENet weights over an epoch: 4 own frames of person + 4 replayed frames (1 a frame).
    road, person = 4 * (8 * 12 - 1), 4 * 16 * 12 + 4 * 1  # right halves less 255 corner
    total = road + person
    expected = [1 / math.log(1.02 + person / total), 1 / math.log(1.02 + road / total)]
    assert data.class_weights == pytest.approx(expected, abs=1e-5)


# -- frames of mixed sizes ------------------------------------------------------------------
def _blocky(rng, w: int, h: int) -> tuple:
    """Frame of 2x2 blocks (halves exactly in any resizer) and random CamVid ids."""
    blocks = rng.integers(0, 255, (h // 2, w // 2, 3)).astype(np.uint8)
    frame = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
    return frame, rng.integers(0, 12, (h, w)).astype(np.uint8)


def _mixed_folder(root: Path) -> Path:
    """CamVid-class folder; val frames alternate 48x36 and 24x18, train frames 24x18."""
    rng = np.random.default_rng(4)
    sizes = [(48, 36), (24, 18), (48, 36), (24, 18), (48, 36), (24, 18)]
    items = [(f"f{i}", *_blocky(rng, w, h)) for i, (w, h) in enumerate(sizes)]
    return write_dataset(root, CAMVID, items, {"train": ["f5"], "val": ["f0", "f1", "f2",
                                                                        "f3", "f4"]})


def _hand_matrix(model, ds, net_hw) -> np.ndarray:
    """Each frame on its own: halved when twice the network input, else as it is."""
    m = np.zeros((11, 11), np.int64)
    for i in range(len(ds)):
        frame, label = ds.load(i)
        half = net_hw is not None and frame.shape[:2] != tuple(net_hw)
        pred = reference_predictions(model, [frame], MEAN, STD, net_hw if half else None)
        m += hand_confusion(pred, [label], 11)
    return m


def test_validation_scores_frames_of_mixed_sizes_one_by_one(tmp_path):
    ds = FolderDataset(_mixed_folder(tmp_path / "data"), "val",
                       EvalTransform(MEAN, STD, (24, 18)))
    model = seeded_model()
    data = SimpleNamespace(val_specs=[{"name": "val"}], val=[ds], class_set=CAMVID)
    result = run_validation(model, data, torch.device("cpu"), False, batch_size=4)["val"]
    m = _hand_matrix(model, ds, (18, 24))
    assert result["pixels"] == m.sum() == sum(int((ds.load(i)[1] != 11).sum())
                                              for i in range(5))
    assert result["global_acc"] == pytest.approx(np.trace(m) / m.sum(), abs=1e-12)
    assert result["frames"] == 5


def test_evaluate_batches_frames_of_mixed_sizes_at_their_own_size(tmp_path):
    root = _mixed_folder(tmp_path / "data")
    model = seeded_model()
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", input_size=None, model=model, half=False)
    res = evaluate_checkpoint(str(ckpt), "folder", str(root), "val", batch_size=3)
    expected = _hand_matrix(model, FolderDataset(root, "val"), None)
    assert res["runtime"] == "torch" and res["frames"] == 5
    assert np.array_equal(np.array(res["confusion_matrix"]), expected)


# -- which frames a run trained on ------------------------------------------------------------
def _folder_run_args(root: Path, run: Path, **overrides) -> dict:
    cfg = merge_config({}, {"dataset": "folder", "data_root": str(root), "out_dir": str(run),
                            **overrides})
    return portable_train_args(cfg, run)  # what a checkpoint stores


def test_seen_in_training_counts_a_folders_train_frames(tmp_path):
    root = write_dataset(tmp_path / "cam", THREE, [item(i) for i in range(6)],
                         {"train": ["frame_00", "frame_02", "frame_03"]})
    frames = sorted((root / "images").iterdir())  # frame_00 ... frame_05
    run = tmp_path / "run"
    args = _folder_run_args(root, run)
    assert seen_in_training(args, frames, run) == 3
    assert seen_in_training(args, frames[4:], run) == 0  # val frames only
    args = _folder_run_args(root, run, train_exclude=["frame_02"], holdout="frame_03")
    assert seen_in_training(args, frames, run) == 1
    # A copied checkpoint (no run folder): frames of a folder with the run's folder name.
    assert seen_in_training(_folder_run_args(root, run), frames) == 3
    other = write_dataset(tmp_path / "other_cam", THREE, [item(i) for i in range(6)])
    assert seen_in_training(_folder_run_args(root, run),
                            sorted((other / "images").iterdir()), run) == 0


def test_seen_in_training_counts_replayed_camvid_frames():
    args = {"dataset": "folder", "data_root": "../cam", "train_split": "train",
            "replay_dataset": "camvid", "replay_split": "train", "replay_ratio": 0.5,
            "replay_exclude": ["0001TP"]}
    frames = [Path("cv/train/0006R0_1.png"), Path("cv/train/0001TP_1.png"),
              Path("cv/val/0016E5_1.png")]
    assert seen_in_training(args, frames) == 1  # 0006R0 from train was replayed
    assert seen_in_training({**args, "replay_ratio": 0.0}, frames) == 0


# -- Cityscapes: a city held out --------------------------------------------------------------
def test_cityscapes_holdout_city_trains_on_the_others_and_scores_it(tmp_path):
    _cityscapes_tree(tmp_path)  # val: aachen, bonn
    for city in ("aachen", "bonn"):
        for kind, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
            folder = tmp_path / kind / "train" / city
            folder.mkdir(parents=True)
            cv2.imwrite(str(folder / f"{city}_000001_000019_{suffix}.png"),
                        np.full((8, 16), 7, np.uint8))  # labelId 7: road
    cfg = merge_config({}, {"dataset": "cityscapes", "data_root": str(tmp_path),
                            "holdout": "aachen", "val_sets": [], "cache": False,
                            "out_dir": str(tmp_path / "run")})
    data = build_data(cfg, verbose=False)
    assert [p[0].parent.name for p in data.train.pairs] == ["bonn"]
    assert data.val_specs[0]["name"] == "heldout_aachen"
    assert [p[0].parent.name for p in data.val[0].pairs] == ["aachen"]

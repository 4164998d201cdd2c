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

"""Datasets and paired transforms (synthetic trees, plus the real CamVid copy if present)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from canet_ros.classes import CAMVID, CITYSCAPES, CITYSCAPES_LABEL_TO_TRAIN
from canet_ros.data import (
    CamVid,
    Cityscapes,
    DatasetError,
    EmptySplitError,
    EvalTransform,
    TrainTransform,
    build_dataset,
    compute_mean_std,
    denormalize,
    label_to_train_lut,
    read_image,
)
from canet_ros.data.transforms import random_crop


def camvid_root() -> Path:
    env = os.environ.get("CANET_CAMVID_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def _write_pair(img_dir: Path, lab_dir: Path, name: str, label: np.ndarray) -> None:
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    # Frame colour = label id * 20 in every channel, so a transform that mis-pairs
    # image and label is caught by comparing them afterwards.
    img = np.repeat((label.astype(np.int32) * 20).clip(0, 255).astype(np.uint8)[..., None], 3, 2)
    cv2.imwrite(str(img_dir / name), img)
    cv2.imwrite(str(lab_dir / name), label)


def make_tree(root: Path, names=("0001TP_000.png", "0001TP_001.png", "0006R0_000.png",
                                 "0016E5_000.png")) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for n in names:
            _write_pair(root / split, root / f"{split}annot", n,
                        rng.integers(0, 12, (24, 32)).astype(np.uint8))
    return root


def test_camvid_split_and_sequence_filter(tmp_path):
    root = make_tree(tmp_path)
    assert len(CamVid(root, "train")) == 4
    assert [p[0].name[:6] for p in CamVid(root, "train", exclude=["0001TP"]).pairs] == \
        ["0006R0", "0016E5"]
    assert len(CamVid(root, "train", include=["0001TP"])) == 2
    with pytest.raises(DatasetError, match="no frames"):
        CamVid(root, "train", include=["Seq05VD"])
    with pytest.raises(DatasetError, match="testannot|test"):
        CamVid(root, "test")


def test_missing_and_corrupt_files_are_named(tmp_path):
    root = make_tree(tmp_path)
    (root / "trainannot" / "0006R0_000.png").unlink()
    ds = CamVid(root, "train")
    with pytest.raises(DatasetError, match="0006R0_000.png"):
        ds[2]
    (root / "train" / "0016E5_000.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"0016E5_000\.png.*decode"):
        ds[3]
    with pytest.raises(DatasetError, match="nope.png"):
        read_image(root / "nope.png")


def _constant_windows(label: np.ndarray, margin: int) -> np.ndarray:
    """Return True where the (2m+1)^2 window around a pixel holds one class and no void."""
    h, w = label.shape
    pad = np.pad(label, margin, mode="constant", constant_values=255)
    same = np.ones((h, w), bool)
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            same &= pad[dy:dy + h, dx:dx + w] == label
    return same


def test_train_transform_shapes_padding_and_pairing():
    torch.manual_seed(0)
    # 12x12 blocks of classes 0, 5, 10 (neighbours always differ); frame grey = id * 20.
    rows, cols = np.indices((48, 64)) // 12
    label = np.array([0, 5, 10], np.uint8)[(rows + cols) % 3]
    image = np.repeat((label * 20)[..., None], 3, 2).astype(np.uint8)
    tf = TrainTransform((40, 30), [0, 0, 0], [1, 1, 1], ignore_index=11, scale_range=(0.5, 2.0))
    saw_pad, interior = False, 0
    for _ in range(30):
        x, y = tf(image, label)
        assert x.shape == (3, 30, 40) and y.shape == (30, 40) and y.dtype == torch.int64
        lab = y.numpy()
        img = denormalize(x, [0, 0, 0], [1, 1, 1]).astype(np.int64)
        assert (img == img[..., :1]).all()  # grey stays grey
        img = img[..., 0]
        # Nearest resizing keeps ids: no class between 0, 5 and 10 is invented.
        assert set(np.unique(lab).tolist()) <= {0, 5, 10, 11}
        assert (img[lab == 11] == 0).all()  # padding: void label, black frame
        # Away from block edges (2 px covers the bilinear/nearest offset at scale <= 2)
        # the frame must show exactly the colour of the label's class.
        inside = _constant_windows(lab, 2) & (lab != 11)
        assert np.array_equal(img[inside], lab[inside] * 20)
        interior += int(inside.sum())
        saw_pad |= bool((lab == 11).any())
    assert saw_pad
    assert interior > 0.3 * 30 * 30 * 40  # the exact check covered many pixels


def test_random_crop_pads_label_with_ignore():
    image = np.full((10, 10, 3), 200, np.uint8)
    label = np.zeros((10, 10), np.uint8)
    img, lab = random_crop(image, label, (16, 12), ignore_index=255)
    assert img.shape == (12, 16, 3) and lab.shape == (12, 16)
    assert (lab == 255).sum() == 16 * 12 - 100 and (img[lab == 255] == 0).all()


def test_flip_moves_image_and_label_together():
    label = np.zeros((8, 8), np.uint8)
    label[:, :2] = 5
    image = np.repeat((label * 20)[..., None], 3, 2)
    tf = TrainTransform((8, 8), [0, 0, 0], [1, 1, 1], ignore_index=11, scale_range=(1, 1))
    flips = 0
    for seed in range(12):
        torch.manual_seed(seed)
        x, y = tf(image, label)
        img = denormalize(x, [0, 0, 0], [1, 1, 1])[..., 0]
        assert np.array_equal(img, y.numpy().astype(np.uint8) * 20)
        flips += int(y[0, -1] == 5)
    assert 0 < flips < 12


def test_eval_transform_resizes_frame_only():
    image = np.zeros((24, 32, 3), np.uint8)
    label = np.ones((24, 32), np.uint8)
    x, y = EvalTransform([0.5] * 3, [0.25] * 3, size=(16, 12))(image, label)
    assert x.shape == (3, 12, 16) and y.shape == (24, 32)
    assert torch.allclose(x, torch.full_like(x, -2.0))


def test_mean_std_and_loader_with_workers(tmp_path):
    root = make_tree(tmp_path)
    ds = CamVid(root, "train")
    mean, std = compute_mean_std(ds)
    pix = np.concatenate([ds.load(i)[0].reshape(-1, 3) for i in range(len(ds))]) / 255.0
    assert mean == pytest.approx(pix.mean(0).tolist()) and std == pytest.approx(pix.std(0).tolist())
    ds.transform = TrainTransform((16, 16), mean, std, ignore_index=11)
    loader = DataLoader(ds, batch_size=2, num_workers=2, pin_memory=torch.cuda.is_available())
    batches = list(loader)
    assert len(batches) == 2 and batches[0][0].shape == (2, 3, 16, 16)


def _cityscapes_tree(root: Path) -> np.ndarray:
    ids = np.arange(-1, 34)  # every official labelId, plus -1 (license plate) cast to 255
    gt = np.resize(ids, (8, 16)).astype(np.int64) % 256
    for city in ("aachen", "bonn"):
        d_img, d_gt = root / "leftImg8bit" / "val" / city, root / "gtFine" / "val" / city
        d_img.mkdir(parents=True)
        d_gt.mkdir(parents=True)
        cv2.imwrite(str(d_img / f"{city}_000000_000019_leftImg8bit.png"),
                    np.zeros((8, 16, 3), np.uint8))
        cv2.imwrite(str(d_gt / f"{city}_000000_000019_gtFine_labelIds.png"),
                    gt.astype(np.uint8))
    return gt


def test_cityscapes_layout_and_mapping_match_cityscapesscripts(tmp_path):
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    gt = _cityscapes_tree(tmp_path)
    ds = Cityscapes(tmp_path, "val")
    assert len(ds) == 2 and len(Cityscapes(tmp_path, "val", cities=["bonn"])) == 1
    _, train_ids = ds.load(0)
    official = {lab.id: lab.trainId for lab in labels.labels if lab.id >= 0}
    expected = np.vectorize(lambda i: official.get(int(i), 255))(gt)
    expected = np.where((expected < 0) | (expected > 18), 255, expected)
    assert np.array_equal(train_ids, expected)
    lut = label_to_train_lut()
    for lab in labels.labels:
        if lab.id >= 0:
            want = lab.trainId if 0 <= lab.trainId < 19 else 255
            assert lut[lab.id] == want, lab.name
    by_train = {lab.trainId: lab for lab in labels.labels if 0 <= lab.trainId < 19}
    assert [by_train[i].name for i in range(19)] == list(CITYSCAPES.names)
    assert [tuple(by_train[i].color) for i in range(19)] == list(CITYSCAPES.colors)
    assert len(CITYSCAPES_LABEL_TO_TRAIN) == 19
    with pytest.raises(DatasetError, match="gtFine"):
        Cityscapes(tmp_path, "train")


def test_cityscapes_city_filters_and_a_split_they_empty(tmp_path):
    _cityscapes_tree(tmp_path)  # val: aachen, bonn; add a train split holding aachen only
    for kind, name in (("leftImg8bit", "leftImg8bit.png"), ("gtFine", "gtFine_labelIds.png")):
        (tmp_path / kind / "train" / "aachen").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / kind / "train" / "aachen" / f"aachen_000001_000019_{name}"),
                    np.zeros((8, 16), np.uint8))
    kept = build_dataset("cityscapes", tmp_path, "val", exclude=["aachen"])  # --holdout aachen
    assert [p[0].name for p in kept.pairs] == ["bonn_000000_000019_leftImg8bit.png"]
    with pytest.raises(EmptySplitError, match=r"include=\['bonn'\]"):
        Cityscapes(tmp_path, "train", cities=["bonn"])
    # canet evaluate --holdout bonn: train+val of bonn; train has none of it and is skipped.
    joined = build_dataset("cityscapes", tmp_path, "train+val", include=["bonn"])
    assert [p[0].name for p in joined.pairs] == ["bonn_000000_000019_leftImg8bit.png"]
    both = build_dataset("cityscapes", tmp_path, "train+val", include=["aachen"])
    assert [p[0].parent.parent.name for p in both.pairs] == ["train", "val"]


def test_real_camvid_copy():
    root = camvid_root()
    if not (root / "train").is_dir():
        pytest.skip(f"CamVid not found at {root} (set CANET_CAMVID_ROOT)")
    train = build_dataset("camvid", root, "train")
    assert len(train) == 367 and len(build_dataset("camvid", root, "val")) == 101
    assert len(build_dataset("camvid", root, "train", exclude=["0001TP"])) == 305
    held = build_dataset("camvid", root, "train", include=["0001TP"])
    assert len(held) == 62
    image, label = held.load(0)
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)
    assert label.max() <= CAMVID.ignore_index

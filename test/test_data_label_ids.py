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

"""CamVid-layout labels with ids the data set does not have are refused when read.

Such an id used to crash training mid-epoch (``Target 50 is out of bounds``) and to be
dropped silently from evaluation scores.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_data import camvid_root, make_tree
from test_training import make_camvid_tree

from canet_ros.classes import CAMVID
from canet_ros.cli import main as canet_main
from canet_ros.data import CamVid, DatasetError, build_dataset


def _spoil(path: Path, value: int) -> None:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    label[:3] = value
    cv2.imwrite(str(path), label)


def test_an_unknown_label_id_is_named_with_its_file(tmp_path):
    root = make_tree(tmp_path)  # labels hold 0..11: the 11 classes and void (ignore)
    assert {int(v) for i in range(4) for v in np.unique(CamVid(root, "train").load(i)[1])} \
        == set(range(12))
    _spoil(root / "trainannot" / "0006R0_000.png", 50)
    for ds in (CamVid(root, "train"), build_dataset("camvid", root, "train+val")):
        with pytest.raises(DatasetError, match=r"0006R0_000\.png: label ids \[50\]"):
            ds.load(2)
    assert CamVid(root, "val").load(2)[1].max() <= CAMVID.ignore_index  # val is untouched


def test_a_colour_label_is_refused_and_a_grey_rgb_one_read(tmp_path):
    root = make_tree(tmp_path)
    grey = cv2.imread(str(root / "trainannot" / "0001TP_000.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(root / "trainannot" / "0001TP_000.png"), np.dstack([grey] * 3))
    colour = CAMVID.palette()[np.minimum(grey, 10)][..., ::-1]  # BGR for OpenCV
    cv2.imwrite(str(root / "trainannot" / "0001TP_001.png"), np.ascontiguousarray(colour))
    ds = CamVid(root, "train")
    assert np.array_equal(ds.load(0)[1], grey)
    with pytest.raises(DatasetError, match=r"0001TP_001\.png: a 3-channel colour image, "
                                           r"not a single-channel index mask"):
        ds.load(1)


def test_training_stops_before_the_first_step_naming_the_label(tmp_path, capsys):
    root = make_camvid_tree(tmp_path / "camvid")
    _spoil(root / "trainannot" / "0006R0_00002.png", 50)
    out = tmp_path / "run"
    assert canet_main(["train", "--data-root", str(root), "--out-dir", str(out), "--steps",
                       "2", "--batch-size", "2", "--crop-size", "48", "32", "--workers", "0",
                       "--threads", "1", "--device", "cpu", "--no-progress",
                       "--val-sets"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("canet train: error: ")
    assert "0006R0_00002.png: label ids [50]" in err[0]
    assert not (out / "last.pt").exists()


def test_replay_mapping_keeps_refusing_unknown_ids():
    from canet_ros.data.camvid import compose_label_maps, id_table

    lut = np.full(256, 255, np.uint8)
    lut[:11] = np.arange(11)[::-1]
    table = compose_label_maps(id_table(11, 11), lut)
    assert table[:11].tolist() == list(range(10, -1, -1)) and table[11] == 255
    assert (table[12:] == -1).all()


def test_real_camvid_labels_hold_the_classes_and_void():
    root = camvid_root()
    if not (root / "trainannot").is_dir():
        pytest.skip(f"CamVid not found at {root} (set CANET_CAMVID_ROOT)")
    ds = build_dataset("camvid", root, "train+val")
    ids = set()
    for i in range(0, len(ds), 47):  # a few frames of every drive, not the whole set
        ids |= set(np.unique(ds.load(i)[1]).tolist())
    assert ids == set(range(12))  # 0-10 the classes, 11 void (the ignore id)

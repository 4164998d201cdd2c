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

"""segment-bag --gt-dir reads label PNGs as a dataset's masks/ are read: the stored ids.

OpenCV reads a 1-bit 0/1 PNG as 0/255, a palette PNG as its colours and grey+alpha as
BGRA. --gt-dir took those as they came: with a 2-class model (ignore 255) a reviewer's
1-bit labels scored mIoU 1.0 (0.354 from the same ids stored 8-bit), and palette and
grey+alpha labels were refused as colour. Each file here is written with the ids it must
give back, by Pillow where Pillow writes that kind, and its header checked to be that kind.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_bag_helpers import camera_bag, labels_for, shared_engine, stamp

from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.bag.groundtruth import DirGroundTruth, GroundTruthError
from canet_ros.data.files import read_index_mask
from canet_ros.errors import DatasetError

CAM = "/cam/image_raw/compressed"
IDS = np.array([[0, 1, 1, 0, 1], [1, 0, 0, 1, 1], [0, 0, 1, 1, 0]], np.uint8)  # 0/1 only
# Palette entry i is grey (i % 4) * 60: ids 0, 4 and 8 are all black, so only the indices
# tell them apart (and B = G = R, so OpenCV's colours would pass as grey ids).
PALETTE = [(i % 4) * 60 for i in range(256) for _ in range(3)]


def png_kind(path: Path) -> tuple[int, int]:
    """Return the PNG's (bit depth, colour type), read from IHDR by hand."""
    head = path.read_bytes()[:26]
    return head[24], head[25]


def write_kind(path: Path, kind: str, ids: np.ndarray) -> tuple[int, int]:
    """Write ``ids`` as a PNG of ``kind``; return the (bit depth, colour type) it must have."""
    if kind in ("1-bit", "2-bit", "4-bit"):
        bits = int(kind[0])
        if bits == 1:
            Image.fromarray(ids * 255).convert("1").save(path)
        else:
            Image.fromarray(ids).save(path, bits=bits)
        return bits, 0
    if kind == "palette":
        image = Image.fromarray(ids, mode="P")
        image.putpalette(PALETTE)
        image.save(path)
        return 8, 3
    if kind == "grey+alpha":
        Image.fromarray(ids, mode="L").convert("LA").save(path)
        return 8, 4
    if kind == "BGRA grey":  # what some tools write for grey labels
        cv2.imwrite(str(path), np.dstack([ids] * 3 + [np.full_like(ids, 255)]))
        return 8, 6
    if kind == "16-bit grey+alpha":
        cv2.imwrite(str(path), np.dstack([ids] * 3 + [np.full_like(ids, 65535)]))
        return 16, 6
    cv2.imwrite(str(path), ids)  # "16-bit": a uint16 array
    return 16, 0


KINDS_8 = {"1-bit": IDS, "2-bit": IDS * 3, "4-bit": IDS * 9 + 4,
           "palette": np.array([[0, 4, 8, 255, 4], [8, 0, 4, 8, 255], [4, 4, 0, 0, 8]], np.uint8),
           "grey+alpha": IDS * 200, "BGRA grey": IDS * 7}
KINDS_16 = {"16-bit": IDS.astype(np.uint16) * 40_000,
            "16-bit grey+alpha": IDS.astype(np.uint16) * 300 + 2}


@pytest.mark.parametrize("kind", list(KINDS_8))
def test_an_8_bit_or_smaller_kind_reads_its_ids_as_masks_do(tmp_path, kind):
    ids = KINDS_8[kind]
    path = tmp_path / "000000.png"
    made = write_kind(path, kind, ids)
    assert png_kind(path) == made
    got = DirGroundTruth(tmp_path).lookup(0, 0)
    assert got.dtype == np.uint8 and got.shape == ids.shape
    np.testing.assert_array_equal(got, ids)
    np.testing.assert_array_equal(read_index_mask(path), ids)  # the dataset reader agrees


@pytest.mark.parametrize("kind", list(KINDS_16))
def test_16_bit_ids_are_read_whole(tmp_path, kind):
    ids = KINDS_16[kind]
    path = tmp_path / "000000.png"
    made = write_kind(path, kind, ids)
    assert png_kind(path) == made
    got = DirGroundTruth(tmp_path).lookup(0, 0)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, ids)
    with pytest.raises(DatasetError, match="uint16 pixels"):  # masks/ stays 8-bit
        read_index_mask(path)


def test_colour_and_broken_pngs_are_still_unusable_in_the_same_words(tmp_path):
    colour = np.dstack([IDS, IDS * 2, IDS * 3])
    cv2.imwrite(str(tmp_path / "000000.png"), colour)
    tinted = np.dstack([IDS, IDS, IDS, np.full_like(IDS, 255)])
    tinted[0, 0, 2] = 9  # one red pixel: not grey
    cv2.imwrite(str(tmp_path / "000001.png"), tinted)
    image = Image.fromarray(np.tile(IDS, (40, 40)), mode="P")
    image.putpalette(PALETTE)
    image.save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "whole.png").unlink()
    (tmp_path / "000002.png").write_bytes(data[: len(data) // 2])  # IDAT cut short
    (tmp_path / "000003.png").write_bytes(b"not a png")
    gt = DirGroundTruth(tmp_path)
    for index in (0, 1):
        with pytest.raises(GroundTruthError) as caught:
            gt.lookup(index, 0)
        assert str(caught.value) == (f"{tmp_path / f'00000{index}.png'}: colour PNG; "
                                     f"expected label ids (one channel)")
    for index in (2, 3):
        with pytest.raises(GroundTruthError, match=rf"00000{index}\.png: cannot read PNG$"):
            gt.lookup(index, 0)


def test_1_bit_labels_score_as_the_same_ids_stored_8_bit(tmp_path):
    """The reviewer's case: 0/1 labels in 1-bit PNGs score as their 8-bit twins."""
    engine = shared_engine()
    src = camera_bag(tmp_path / "in", n=3, topic=CAM)
    reports = {}
    for kind in ("8-bit", "1-bit"):
        folder = tmp_path / kind
        folder.mkdir()
        for i in range(3):
            sec, nsec = stamp(i)
            ids = (labels_for(i) % 2).astype(np.uint8)  # two ids, both CamVid classes
            path = folder / f"{sec}_{nsec:09d}.png"
            if kind == "8-bit":
                cv2.imwrite(str(path), ids)
            else:
                write_kind(path, kind, ids)
        reports[kind] = segment_bag(engine, SegmentOptions(src, tmp_path / f"out{kind}",
                                                           topic=CAM, gt_dir=folder))
    eight, one = reports["8-bit"], reports["1-bit"]
    assert eight["ground_truth"]["frames_with_gt"] == 3
    assert one["ground_truth"]["frames_with_gt"] == 3
    assert one["confusion_matrix"] == eight["confusion_matrix"]
    assert one["miou"] == eight["miou"]

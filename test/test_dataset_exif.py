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

"""A JPEG frame with an EXIF orientation: the check and the import see what training sees.

Training reads frames with IMREAD_COLOR, which turns a JPEG by its EXIF Orientation tag
(a phone photo stored landscape, shown portrait). The dataset check and the CVAT import
compared mask sizes against the stored, unturned frame: a mask drawn on the frame as shown
was refused, and a mask in the stored orientation passed the check, then stopped training
with a size error at that frame (or, for a 180-degree turn, trained on a label turned
against its image without a word).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from canet_ros.classes import CAMVID
from canet_ros.data import DatasetProblems, FolderDataset, check_dataset, import_cvat, write_dataset
from canet_ros.data.cvat import write_cvat_package
from canet_ros.image_files import read_image, write_image

ORIENTATION = 0x0112
CAR, CAR_RGB = 8, (64, 0, 128)  # CamVid's car id and colour


def stored_frame() -> tuple:
    """Return a 64x48 frame stored with a car strip on its 8 left columns, and that mask."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :8] = CAR_RGB
    mask = np.zeros((48, 64), np.uint8)
    mask[:, :8] = CAR
    return image, mask


def save_jpeg(path: Path, rgb: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(rgb).save(path, quality=100, exif=exif.tobytes())


def shown(mask: np.ndarray, orientation: int) -> np.ndarray:
    """Turn the mask as a viewer shows the frame: EXIF 6 by 90 degrees clockwise, 3 by 180."""
    return np.ascontiguousarray({6: np.rot90(mask, -1), 3: np.rot90(mask, 2)}[orientation])


def dataset_with_turned_frame(root: Path, orientation: int, mask_as_shown: bool) -> Path:
    image, mask = stored_frame()
    write_dataset(root, CAMVID, [(f"f{i}", image, mask) for i in range(4)],
                  {"train": ["f0", "f1"], "val": ["f2", "f3"]})
    (root / "images" / "f0.png").unlink()
    save_jpeg(root / "images" / "f0.jpg", image, orientation)
    write_image(root / "masks" / "f0.png", shown(mask, orientation) if mask_as_shown else mask)
    return root


@pytest.mark.parametrize("orientation", [6, 3])
def test_mask_drawn_on_the_frame_as_shown_passes_and_trains_aligned(tmp_path, orientation):
    root = dataset_with_turned_frame(tmp_path / "ds", orientation, mask_as_shown=True)
    check_dataset(root)
    ds = FolderDataset(root, "train")
    image, mask = ds.load([ds.name(i) for i in range(len(ds))].index("f0"))
    car_pixels = np.abs(image.astype(int) - CAR_RGB).sum(-1) < 30
    # JPEG at quality 100 keeps the strip's edge within a pixel: labels follow the colour.
    assert (car_pixels != (mask == CAR)).mean() < 0.02
    assert image.shape[:2] == mask.shape == ((64, 48) if orientation == 6 else (48, 64))
    assert (mask == CAR).sum() == 8 * 48


def test_mask_in_the_stored_orientation_is_named_by_the_check(tmp_path):
    root = dataset_with_turned_frame(tmp_path / "ds", 6, mask_as_shown=False)
    with pytest.raises(DatasetProblems) as exc:
        check_dataset(root)
    assert any("f0.png: mask is 64x48" in p and "f0.jpg is 48x64" in p
               for p in exc.value.problems)


def test_cvat_import_compares_the_mask_with_the_frame_as_shown(tmp_path):
    image, mask = stored_frame()
    into = tmp_path / "data"
    write_dataset(into, CAMVID, [("f0", image, mask), ("f1", image, mask)])
    for p in (into / "masks").iterdir():
        p.unlink()
    (into / "images" / "f0.png").unlink()
    save_jpeg(into / "images" / "f0.jpg", image, 6)
    labels = {"f0": shown(mask, 6), "f1": mask}
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, labels.items())
    result = import_cvat(pkg, into)
    assert result["masks"] == 2
    back = read_image(into / "masks" / "f0.png", cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, labels["f0"])

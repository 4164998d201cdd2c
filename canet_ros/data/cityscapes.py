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

"""Cityscapes in its official layout.

``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
``gtFine/<split>/<city>/<name>_gtFine_labelIds.png``. LabelIds are mapped to the 19
trainIds of ``canet_ros.classes``; every other id becomes 255 (ignored).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..classes import CITYSCAPES, CITYSCAPES_LABEL_TO_TRAIN
from .camvid import (
    DatasetError,
    EmptySplitError,
    Pair,
    PathLike,
    SegmentationDataset,
    Transform,
    filter_names,
)
from .problems import brief_items

IMG_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def label_to_train_lut() -> np.ndarray:
    """256-entry lookup table labelId -> trainId, 255 for everything not evaluated."""
    lut = np.full(256, CITYSCAPES.ignore_index, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN.items():
        lut[label_id] = train_id
    return lut


def train_to_label_ids() -> np.ndarray:
    """Inverse map trainId -> labelId (for writing predictions the official evaluator reads)."""
    inv = np.zeros(256, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN.items():
        inv[train_id] = label_id
    return inv


def cityscapes_pairs(root: PathLike, split: str, cities: Optional[Sequence[str]] = None,
                     exclude: Optional[Sequence[str]] = None) -> List[Pair]:
    """Sorted (frame, label) pairs of one split; ``cities``/``exclude`` are city prefixes."""
    root = Path(root)
    img_root, gt_root = root / "leftImg8bit" / split, root / "gtFine" / split
    for d in (img_root, gt_root):
        if not d.is_dir():
            raise DatasetError(f"{d}: Cityscapes folder not found (expected "
                               "leftImg8bit/<split>/<city>/ and gtFine/<split>/<city>/)")
    frames = sorted(img_root.glob(f"*/*{IMG_SUFFIX}"))
    keep = set(filter_names([f.parent.name for f in frames], cities, exclude))
    pairs = []
    for f in frames:
        if f.parent.name not in keep:
            continue
        stem = f.name[: -len(IMG_SUFFIX)]
        pairs.append((f, gt_root / f.parent.name / f"{stem}{LABEL_SUFFIX}"))
    if not frames:
        raise DatasetError(f"{img_root}: no *{IMG_SUFFIX} frames found")
    if not pairs:  # the filters took them all: a joined split skips this one
        raise EmptySplitError(f"{img_root}: no frames (after include="
                              f"[{brief_items(list(cities or []))}] "
                              f"exclude=[{brief_items(list(exclude or []))}])")
    return pairs


class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations as trainIds.

    ``cities`` keeps and ``exclude`` drops cities by name prefix (``--holdout aachen``).
    """

    def __init__(self, root: PathLike, split: str = "train",
                 transform: Optional[Transform] = None, *,
                 cities: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None, cache: bool = False):
        super().__init__(cityscapes_pairs(root, split, cities, exclude), transform,
                         label_map=label_to_train_lut(), cache=cache)
        self.root, self.split = Path(root), split

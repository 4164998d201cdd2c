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

"""Datasets and paired transforms for training and evaluation."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..classes import CAMVID, CITYSCAPES, ClassSet
from .camvid import (
    CamVid,
    DatasetError,
    EmptySplitError,
    PathLike,
    SegmentationDataset,
    Transform,
    read_image,
    read_label,
)
from .cityscapes import Cityscapes, label_to_train_lut, train_to_label_ids
from .classes_file import SplitRule, load_classes, save_classes
from .cvat import write_cvat_package
from .cvat_import import import_cvat
from .folder import DatasetSummary, FolderDataset, check_dataset, index_folder, write_dataset
from .problems import DatasetProblems, brief, no_labels_text
from .transforms import EvalTransform, TrainTransform, denormalize, normalize

DATASETS = ("camvid", "cityscapes", "folder")  # "folder": a dataset of your own (folder.py)
# A dataset added to DATASETS needs its case in each dispatch below (_ENV_ROOTS, _one_split,
# dataset_class_set) and in seen.py; each says which is missing (docs/design.md, Extending).
_ENV_ROOTS = {"camvid": "CANET_CAMVID_ROOT", "cityscapes": "CANET_CITYSCAPES_ROOT",
              "folder": None}  # a folder is always given: no default to find


def _not_wired(name: str, where: str) -> AssertionError:
    """Return the error for ``name`` listed in DATASETS that ``where`` has no case for."""
    return AssertionError(f"dataset {name!r} is listed in canet_ros.data.DATASETS but not "
                          f"wired into {where}; add its case there (docs/design.md, Extending)")


def _env_variable(name: str) -> Optional[str]:
    """Return the $CANET_<NAME>_ROOT variable that names ``name``'s folder, if it has one."""
    if name in DATASETS and name not in _ENV_ROOTS:
        raise _not_wired(name, "canet_ros.data._ENV_ROOTS")
    return _ENV_ROOTS.get(name)


def default_data_root(name: str) -> Path:
    """$CANET_<NAME>_ROOT, else the shared data folder next to the repository."""
    env = os.environ.get(_env_variable(name) or "", "")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    # <work>/main/canet_ros/data/__init__.py -> <work>/shared/data/<name>
    return here.parents[3] / "shared" / "data" / name


def build_dataset(name: str, root: Optional[PathLike], split: str,
                  transform: Optional[Transform] = None, *,
                  include: Optional[Sequence[str]] = None,
                  exclude: Optional[Sequence[str]] = None,
                  cache: bool = False, root_flag: str = "--data-root") -> SegmentationDataset:
    """Build one split of a named dataset.

    ``include``/``exclude`` are name prefixes (CamVid sequences such as ``0001TP``,
    Cityscapes cities). ``root_flag``: the caller's option that gives ``root``, named
    where it is missing (``--replay-root`` for a replayed data set).
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {brief(name)}; choose one of {', '.join(DATASETS)}")
    if name == "folder" and not root:
        raise DatasetError(f"dataset 'folder' needs its folder ({root_flag} DIR)")
    if not root:
        root = default_data_root(name)
        if not root.is_dir():  # an installed package has no ../shared next to it
            raise DatasetError(_no_default_root(name, root, root_flag))
    root = Path(root)
    if "+" in split:
        dataset = _joined_splits(name, root, split, transform, include, exclude, cache)
    else:
        dataset = _one_split(name, root, split, transform, include, exclude, cache)
    if name == "folder":
        _check_labelled(dataset, _check_once(root), include, exclude)
    return dataset


def _one_split(name: str, root: Path, split: str, transform: Optional[Transform],
               include: Optional[Sequence[str]], exclude: Optional[Sequence[str]],
               cache: bool) -> SegmentationDataset:
    if name == "camvid":
        return CamVid(root, split, transform, include=include, exclude=exclude, cache=cache)
    if name == "cityscapes":
        return Cityscapes(root, split, transform, cities=include, exclude=exclude, cache=cache)
    if name == "folder":
        _check_once(root)
        return FolderDataset(root, split, transform, include=include, exclude=exclude,
                             cache=cache)
    raise _not_wired(name, "canet_ros.data._one_split()")


def _no_default_root(name: str, root: Path, flag: str) -> str:
    """Say that ``flag`` (the caller's root option) was not given and how to give it."""
    env = _env_variable(name)
    origin = (f"${env} names it" if env and os.environ.get(env) else
              f"the default, ../shared/data/{name} beside a repository checkout")
    return (f"{root}: {name} data folder not found (no {flag} was given; {origin}). "
            f"Give the dataset's folder with {flag} DIR" + (f" or set {env}=DIR" if env else ""))


_CHECKED: Dict[tuple, DatasetSummary] = {}


def _check_once(root: Path) -> DatasetSummary:
    """check_dataset before a folder's first use in this process (again once it changes).

    Training and evaluation build each split through here; the check reads every file,
    so it runs once per folder state, not once per split.
    """
    parts = [root, root / "images", root / "masks", root / "classes.yaml"]
    key = (str(root.resolve()), tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in parts))
    if key not in _CHECKED:
        _CHECKED[key] = check_dataset(root)
    return _CHECKED[key]


def _check_labelled(dataset: SegmentationDataset, summary: DatasetSummary,
                    include: Optional[Sequence[str]], exclude: Optional[Sequence[str]]) -> None:
    """Refuse a folder split whose masks are all the ignore id: its loss would be NaN.

    check_dataset refuses a whole split like that; the include/exclude filters can still
    leave one, and the check's per-mask counts tell without reading the masks again.
    """
    counts = [summary.labelled.get(str(mask)) for _, mask in dataset.pairs]
    if any(c is None for c in counts) or any(counts):  # None: not checked (changed since)
        return
    filters = (f" (include={list(include or [])} exclude={list(exclude or [])})"
               if include or exclude else "")
    raise DatasetError(no_labels_text(summary.root, str(dataset.split), len(counts),
                                      summary.class_set.ignore_index, filters))


def dataset_class_set(name: str, root: Optional[PathLike] = None) -> ClassSet:
    """Return the classes of a named dataset: CamVid's, Cityscapes', or a folder's classes.yaml.

    For a CVAT export folder without classes.yaml, the classes its labelmap.txt names.
    """
    if name == "camvid":
        return CAMVID
    if name == "cityscapes":
        return CITYSCAPES
    if name == "folder":
        if not root:
            raise DatasetError("dataset 'folder' needs its folder (--data-root DIR)")
        index = index_folder(root)
        if index.class_set is None:
            raise DatasetProblems(str(root), index.problems)
        return index.class_set
    if name in DATASETS:
        raise _not_wired(name, "canet_ros.data.dataset_class_set()")
    raise DatasetError(f"unknown dataset {brief(name)}; choose one of {', '.join(DATASETS)}")


def _joined_splits(name: str, root: Path, split: str, transform: Optional[Transform],
                   include: Optional[Sequence[str]], exclude: Optional[Sequence[str]],
                   cache: bool) -> SegmentationDataset:
    """``train+val``: the named splits' frames in one dataset, in split order.

    A split left empty by the filters is skipped (``train+val`` holding out a drive that
    only ``train`` has); only when every split is empty is that an error.
    """
    parts, errors = [], []
    for one in _split_parts(name, split):
        try:
            parts.append(_one_split(name, root, one, None, include, exclude, False))
        except EmptySplitError as exc:
            errors.append(str(exc))
    if not parts:
        raise DatasetError("; ".join(errors) or f"{name}: empty split list {brief(split)}")
    pairs = [pair for ds in parts for pair in ds.pairs]
    joined = SegmentationDataset(pairs, transform, label_map=parts[0].label_map, cache=cache)
    joined.root, joined.split = root, split
    if name == "folder":  # its masks need the folder's own decoding and checks
        joined = parts[0]
        joined.pairs, joined.transform, joined.split = pairs, transform, split
        joined.cache, joined._cache = cache, {}
    return joined


def _split_parts(name: str, split: str) -> List[str]:
    """Return the split names joined by '+' in ``split``; refuse a repeated or empty one.

    A split named twice would count its frames twice; so would a folder's ``all`` (train
    and val together) joined to any other. CamVid and Cityscapes have no ``all``.
    """
    parts = split.split("+")
    twice = sorted({p for p in parts if p and parts.count(p) > 1})
    if "" in parts:
        why = "has an empty part; join split names with single '+' signs, e.g. train+val"
    elif twice:
        why = f"names {brief(twice[0])} twice, which would count its frames twice"
    elif name == "folder" and "all" in parts:
        why = "joins 'all', which already holds every frame (train and val); give all alone"
    else:
        return parts
    raise DatasetError(f"split {brief(split)} {why}")


def compute_mean_std(dataset: SegmentationDataset) -> Tuple[list, list]:
    """Per-channel RGB mean/std over all pixels of the raw frames, in [0, 1] units."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for i in range(len(dataset)):
        img, _ = dataset.load(i)
        x = img.reshape(-1, 3).astype(np.float64) / 255.0
        total += x.sum(0)
        total_sq += (x * x).sum(0)
        count += x.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 1e-12))
    return mean.tolist(), std.tolist()


__all__ = [
    "DATASETS", "CamVid", "Cityscapes", "DatasetError", "DatasetProblems", "DatasetSummary",
    "EmptySplitError", "EvalTransform", "FolderDataset", "SegmentationDataset", "SplitRule",
    "check_dataset", "dataset_class_set", "import_cvat", "load_classes", "save_classes",
    "write_cvat_package", "write_dataset",
    "TrainTransform", "build_dataset", "compute_mean_std", "default_data_root", "denormalize",
    "label_to_train_lut", "normalize", "read_image", "read_label", "train_to_label_ids",
]

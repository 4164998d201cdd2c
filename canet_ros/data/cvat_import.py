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

"""``canet dataset import-cvat``: a CVAT "Segmentation mask 1.1" export into a dataset folder.

Checked whole before anything is written (``cvat`` has the format and its decoder).
"""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import cv2

from ..classes import ClassSet
from ..errors import DatasetError
from ..image_files import read_image, write_image
from .camvid import _IMAGE_EXTS
from .classes_file import CLASSES_FILE, parse_classes, save_classes
from .cvat import (
    CLASS_DIR,
    LABELMAP,
    LIST_DIR,
    ColorDecoder,
    CvatExport,
    class_set_from_labelmap,
    is_cvat_export,
    read_color_mask,
    unknown_colors_text,
)
from .files import files_by_stem, flat_names
from .problems import DatasetProblems, capped


def find_export_root(folder: Path) -> Path:
    """Return the folder holding labelmap.txt: ``folder`` itself or one level down (a zip's top)."""
    if is_cvat_export(folder):
        return folder
    inner = [p for p in folder.iterdir() if p.is_dir() and is_cvat_export(p)]
    if len(inner) == 1:
        return inner[0]
    raise DatasetError(f"{folder}: not a CVAT 'Segmentation mask 1.1' export (no {LABELMAP} "
                       f"or {CLASS_DIR}/)")


def _unpack(source: Path, tmp: Path) -> Path:
    try:
        with zipfile.ZipFile(source) as zf:
            zf.extractall(tmp)  # zipfile drops absolute paths and '..' parts
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{source}: not a readable zip file ({exc})") from None
    return tmp


def _import_classes(into: Path, export: CvatExport) -> Tuple[ClassSet, bool, List[str]]:
    """Return the target's classes.yaml if it has one, else the labelmap's (to be written)."""
    path = into / CLASSES_FILE
    if path.is_file():
        class_set, _, problems = parse_classes(path)
        if class_set is None:
            return ClassSet("invalid", (), (), 255), False, problems
        return class_set, False, []
    return class_set_from_labelmap(export.labels, into.name or "custom"), True, []


def _image_shape(image: Path) -> Tuple[int, int]:
    frame = read_image(image, cv2.IMREAD_UNCHANGED)
    if frame is None:
        raise DatasetError(f"{image}: cannot decode (corrupt or not an image); nothing imported")
    return frame.shape[0], frame.shape[1]


def _convert_all(export: CvatExport, into: Path, class_set: ClassSet, staging: Path,
                 overwrite: bool) -> Tuple[List[str], Dict[str, int]]:
    decoder, problems = ColorDecoder.build(export.labels, class_set, export.root / LABELMAP)
    missing, unknown, no_image, sizes, existing = [], [], [], [], []
    counts = {"frames": 0, "unlabelled_frames": 0}
    names, clashes = flat_names(export.stems(), export.root / LIST_DIR)
    problems += capped(clashes, "frame name clashes")
    # Duplicate stems and a missing images/ show up below, as masks without their frame.
    images = files_by_stem(into / "images", _IMAGE_EXTS, [], "the frames")
    for name, stem in names.items():
        path = export.mask_path(stem)
        image = images.get(name)
        if not path.is_file():
            missing.append(f"{path}: missing (frame {stem!r} is listed in {LIST_DIR})")
            continue
        if image is None:
            no_image.append(f"{path}: no image {into / 'images'}/{name}.* for this mask")
        if (into / "masks" / f"{name}.png").exists() and not overwrite:
            existing.append(f"{into / 'masks' / name}.png")
        if problems:
            continue  # no decoding without a valid label mapping
        ids, bad = decoder.decode(read_color_mask(path))
        if bad:
            unknown.append(unknown_colors_text(path, bad))
            continue
        if image is not None:
            shape = _image_shape(image)
            if shape != ids.shape:
                sizes.append(f"{path}: mask is {ids.shape[1]}x{ids.shape[0]} but its image "
                             f"{image} is {shape[1]}x{shape[0]}")
        counts["frames"] += 1
        counts["unlabelled_frames"] += int((ids == class_set.ignore_index).all())
        staged = staging / f"{name}.png"
        if not write_image(staged, ids):  # a lost mask would go unnoticed until training
            raise OSError(f"{staged}: cannot write")
    if existing:
        problems.append(f"{into / 'masks'}: {len(existing)} masks would be replaced (e.g. "
                        f"{existing[0]}); pass --overwrite to replace them")
    problems += capped(missing, "missing masks") + capped(no_image, "masks without images")
    problems += capped(unknown, "masks with unknown colours") + capped(sizes, "size mismatches")
    return problems, counts


def import_cvat(source: Path, into: Path, overwrite: bool = False) -> Dict[str, object]:
    """Turn a CVAT export (zip or folder) into ``into/masks/<stem>.png`` index masks.

    Every mask is checked before anything is written; DatasetProblems lists all that is
    wrong (a colour not in labelmap.txt names the file and the colour).
    """
    source, into = Path(source), Path(into)
    if not source.exists():
        raise DatasetError(f"{source}: no such file or folder")
    if not into.is_dir():
        raise DatasetError(f"{into}: no such folder (the extract-frames output to label)")
    with tempfile.TemporaryDirectory(prefix="canet_cvat_") as tmp:
        folder = source if source.is_dir() else _unpack(source, Path(tmp) / "export")
        export = CvatExport.open(find_export_root(folder))
        class_set, write_classes, problems = _import_classes(into, export)
        staging = Path(tmp) / "masks"
        staging.mkdir()
        if not problems:
            more, counts = _convert_all(export, into, class_set, staging, overwrite)
            problems += more
        if not problems and not export.stems():
            problems.append(f"{export.root}: the export lists no frames")
        if problems:
            raise DatasetProblems(f"{source}: nothing imported", problems)
        (into / "masks").mkdir(exist_ok=True)
        for path in sorted(staging.iterdir()):
            shutil.move(str(path), str(into / "masks" / path.name))
    if write_classes:
        save_classes(into, class_set)
    return {"source": str(source), "into": str(into), "masks": counts["frames"],
            "unlabelled_frames": counts["unlabelled_frames"],
            "classes": list(class_set.names), "wrote_classes_yaml": write_classes}

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

"""Shared by dataset folders and CVAT exports: frame lists, frame names, index-mask PNGs."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from ..errors import DatasetError
from ..image_files import ImageFileError, grey_channel, read_label_image
from .problems import capped


def read_list_text(path: Path) -> str:
    """Return the text of a frame list (train.txt, an ImageSets list); DatasetError if unreadable.

    A leading UTF-8 BOM is dropped: Windows editors write one, and it would otherwise
    become part of the first frame's name.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save "
                           f"it as UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def read_index_mask(path: Path) -> np.ndarray:
    """Read a single-channel PNG of uint8 class ids (masks/<stem>.png); DatasetError names it.

    A palette PNG's indices are the ids, as in Pascal VOC's masks (its colours only show
    them), and so are a 1, 2 or 4-bit greyscale PNG's values (``read_label_image``, as
    segment-bag --gt-dir reads them too); a colour (RGB) mask is refused, as its colours
    are not ids.
    """
    try:
        mask = read_label_image(path)
    except ImageFileError as exc:
        raise DatasetError(str(exc)) from None
    if mask is None:
        raise DatasetError(f"{path}: cannot decode (corrupt or not an image)")
    if mask.dtype != np.uint8:
        raise DatasetError(f"{path}: {mask.dtype} pixels; masks are 8-bit class ids")
    ids = grey_channel(mask)
    if ids is None:
        raise DatasetError(f"{path}: a colour image; masks/ holds single-channel class "
                           f"ids (canet dataset import-cvat converts CVAT colour masks)")
    return ids


def flat_names(stems: Iterable[str], where: Path) -> Tuple[Dict[str, str], List[str]]:
    """Map each frame's file name (its folders dropped) to its CVAT name; clashes as problems.

    Dataset folders are flat (images/<stem>.png), so ``left/f0`` and ``right/f0`` would
    both become f0: that is refused rather than one silently replacing the other.
    """
    names: Dict[str, str] = {}
    problems: List[str] = []
    for stem in stems:
        name = Path(stem).name
        if name in names:
            problems.append(f"{where}: frames {names[name]!r} and {stem!r} both become "
                            f"{name!r}; a dataset folder is flat, rename one in CVAT")
            continue
        names[name] = stem
    return names, problems


def files_by_stem(folder: Path, exts: Sequence[str], problems: List[str],
                  what: str) -> Dict[str, Path]:
    """Map stem -> file in ``folder`` (exact stems, no glob); a second file of a stem is a problem.

    A missing folder is a problem too (``what`` says what it should hold).
    """
    if not folder.is_dir():
        problems.append(f"{folder}: missing ({what})")
        return {}
    found: Dict[str, Path] = {}
    twins: List[str] = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in exts:
            if path.stem in found:
                twins.append(f"{path}: same name as {found[path.stem].name}; one file per "
                             f"frame")
                continue
            found[path.stem] = path
    problems.extend(capped(twins, "files with the same name as another (one file per frame)"))
    return found

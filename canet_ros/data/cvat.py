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

"""CVAT's "Segmentation mask 1.1" format: write pre-labels for it, read what it exports.

The package (a zip, or the folder unpacked) is Pascal VOC's segmentation layout::

    labelmap.txt                      name:r,g,b:: per label, "background" included
    ImageSets/Segmentation/default.txt  frame names without extension, one a line
    SegmentationClass/<name>.png      colour masks: each pixel the colour of its label
    SegmentationObject/<name>.png     instance masks (colour = instance number)

Labels match classes by name (a label's colour only paints this package). ``background``
pixels (CVAT's where nothing is annotated) are the ignore id, unless a class is named
``background``: then they are that class, and ignored pixels get label ``ignore``.
Importing an export into a dataset folder is ``cvat_import``.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..classes import ClassSet
from ..errors import DatasetError
from ..fs_names import as_text, on_disk
from ..image_files import ImageFileError, read_image, write_image
from .classes_file import CLASSES_FILE, mask_limit_problem
from .files import read_list_text
from .problems import DatasetProblems, capped

Color = Tuple[int, int, int]
LABELMAP = "labelmap.txt"
CLASS_DIR = "SegmentationClass"
OBJECT_DIR = "SegmentationObject"
LIST_DIR = Path("ImageSets") / "Segmentation"
IMAGE_DIR = "JPEGImages"  # where CVAT puts the frames when exported with "Save images"
BACKGROUND = "background"
IGNORE_LABEL = "ignore"
_NOT_CLASSES = (BACKGROUND, IGNORE_LABEL)  # label names that mean "ignored" unless a class


def voc_color(index: int) -> Color:
    """Pascal VOC's colour for ``index``: its bits spread over R, G, B from the top bit down.

    CVAT and Datumaro decode SegmentationObject instance numbers with this colour map.
    """
    rgb = [0, 0, 0]
    for shift in range(7, -1, -1):
        for channel in range(3):
            rgb[channel] |= ((index >> channel) & 1) << shift
        index >>= 3
    return rgb[0], rgb[1], rgb[2]


def pack(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW int32 keys r<<16 | g<<8 | b (one number per colour)."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_labelmap(path: Path) -> List[Tuple[str, Color]]:
    """(name, colour) per line of a labelmap.txt; DatasetProblems naming each bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; a CVAT 'Segmentation mask 1.1' export has a "
                           f"labelmap.txt naming each label's colour") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    entries: List[Tuple[str, Color]] = []
    problems: List[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        parts = rest.split(":")[0].split(",")
        try:
            color = tuple(int(v) for v in parts)
        except ValueError:
            color = ()
        if not name or len(color) != 3 or not all(0 <= v <= 255 for v in color):
            problems.append(f"{path}:{number}: expected 'name:r,g,b::', got {line!r}")
            continue
        if any(name == n for n, _ in entries):
            problems.append(f"{path}:{number}: label {name!r} is defined twice")
        entries.append((name, (color[0], color[1], color[2])))
    if not entries and not problems:
        problems.append(f"{path}: no labels in it")
    if problems:
        raise DatasetProblems(str(path), problems)
    return entries


def write_labelmap(path: Path, entries: Sequence[Tuple[str, Color]]) -> None:
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{r},{g},{b}::" for name, (r, g, b) in entries]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _free_color(taken: Iterable[Color]) -> Color:
    used = set(taken)
    return next(voc_color(i) for i in range(1 << 24) if voc_color(i) not in used)


def package_labels(class_set: ClassSet) -> Tuple[List[Tuple[str, Color]], Color]:
    """Return the labelmap for ``class_set`` and the colour its ignored pixels are painted in."""
    entries = list(zip(class_set.names, class_set.colors, strict=True))
    # Import matches labels to classes case-insensitively, so a class "Background" would
    # take in a "background" label's pixels: the ignored pixels' label must not clash.
    taken = {n.lower() for n in class_set.names}
    free = [n for n in (BACKGROUND, IGNORE_LABEL) if n not in taken]
    if not free:
        raise DatasetError(f"{class_set.name}: classes named {BACKGROUND!r} and "
                           f"{IGNORE_LABEL!r} (in any case) leave no CVAT label for the "
                           f"ignored pixels; rename one of them")
    ignore_name = free[0]
    ignore_color = (0, 0, 0) if (0, 0, 0) not in class_set.colors else \
        _free_color(class_set.colors)
    return [(ignore_name, ignore_color)] + entries, ignore_color


def class_set_from_labelmap(entries: Sequence[Tuple[str, Color]], name: str) -> ClassSet:
    """Classes in labelmap order, less the label that means "ignored"; ignore id 255.

    That label is ``ignore`` where there is one (``background`` is then a class, as
    ``package_labels`` writes it), else ``background``.
    """
    # Exactly "ignore", as package_labels writes it: a class "IGNORE" stays a class.
    skip = IGNORE_LABEL if any(n == IGNORE_LABEL for n, _ in entries) else BACKGROUND
    kept = [(n, c) for n, c in entries if n.lower() != skip]
    if not kept:
        raise DatasetError(f"{name}: labelmap.txt has no labels besides {skip!r}")
    return ClassSet(name, tuple(n for n, _ in kept), tuple(c for _, c in kept), 255)


@dataclass
class ColorDecoder:
    """Colour mask -> class ids through a labelmap, matched to a class set by name."""

    keys: np.ndarray  # sorted packed colours
    ids: np.ndarray   # class id (or ignore) per key
    names: Dict[Color, str] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: Sequence[Tuple[str, Color]], class_set: ClassSet,
              labelmap: Path) -> Tuple[ColorDecoder, List[str]]:
        lookup = {n: i for i, n in enumerate(class_set.names)}
        lower = {n.lower(): i for i, n in enumerate(class_set.names)}
        pairs: Dict[int, int] = {}
        names: Dict[Color, str] = {}
        problems: List[str] = []
        for name, color in entries:
            cid = lookup.get(name, lower.get(name.lower()))
            if cid is None and name.lower() in _NOT_CLASSES:
                cid = class_set.ignore_index
            if cid is None:
                problems.append(f"{labelmap}: label {name!r} is not one of the classes "
                                f"({', '.join(class_set.names)}); add it to {CLASSES_FILE} "
                                f"or rename the label in CVAT")
                continue
            key = (color[0] << 16) | (color[1] << 8) | color[2]
            if key in pairs and pairs[key] != cid:
                problems.append(f"{labelmap}: labels {names[color]!r} and {name!r} share the "
                                f"colour {color}")
            pairs[key], names[color] = cid, name
        keys = np.array(sorted(pairs), dtype=np.int32)
        ids = np.array([pairs[k] for k in sorted(pairs)], dtype=np.uint8)
        return cls(keys, ids, names), problems

    def decode(self, rgb: np.ndarray) -> Tuple[np.ndarray, List[Tuple[Color, int]]]:
        """(HxW uint8 ids, [(unknown colour, pixel count)]); unknown pixels are left 0."""
        packed = pack(rgb)
        where = np.searchsorted(self.keys, packed).clip(0, max(len(self.keys) - 1, 0))
        known = self.keys[where] == packed if len(self.keys) else np.zeros_like(packed, bool)
        ids = np.where(known, self.ids[where] if len(self.ids) else 0, 0).astype(np.uint8)
        unknown: List[Tuple[Color, int]] = []
        if not known.all():
            values, counts = np.unique(packed[~known], return_counts=True)
            unknown = [(((int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255), int(c))
                       for v, c in zip(values, counts, strict=True)]
        return ids, unknown


def read_color_mask(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB of a colour mask (palette PNGs expand to their colours)."""
    try:
        bgr = read_image(path, cv2.IMREAD_COLOR)
    except ImageFileError as exc:
        raise DatasetError(str(exc)) from None
    if bgr is None:
        raise DatasetError(f"{path}: cannot decode (corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def unknown_colors_text(path: Path, unknown: Sequence[Tuple[Color, int]]) -> str:
    shown = ", ".join(f"{c} ({n} px)" for c, n in unknown[:8])
    more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
    return f"{path}: colours not in labelmap.txt: {shown}{more}"


class PackageWriter:
    """Write index masks as a CVAT "Segmentation mask 1.1" package, frame by frame."""

    def __init__(self, out: Path, class_set: ClassSet):
        limit = mask_limit_problem(class_set.num_classes, class_set.ignore_index)
        if limit:  # the colour lookup below is uint8-indexed, like the masks
            raise DatasetError(f"{class_set.name}: {limit}")
        self.out, self.class_set = out, class_set
        entries, ignore_color = package_labels(class_set)
        self.entries = entries
        n = class_set.num_classes
        self.lut = np.zeros((256, 3), np.uint8)
        self.lut[:n] = class_set.palette()[:n]
        self.lut[class_set.ignore_index] = ignore_color
        self.stems: List[str] = []
        for sub in (CLASS_DIR, OBJECT_DIR, str(LIST_DIR)):
            (out / sub).mkdir(parents=True, exist_ok=True)
        write_labelmap(out / LABELMAP, entries)

    def add(self, stem: str, mask: np.ndarray) -> None:
        cs = self.class_set
        bad = (mask >= cs.num_classes) & (mask != cs.ignore_index)
        if bad.any():
            raise DatasetError(f"{stem}: mask holds ids {sorted(set(mask[bad].tolist()))} "
                               f"outside the {cs.num_classes} classes")
        color = self.lut[mask]
        # One instance per class present, numbered in class order; ignored pixels are
        # instance 0, which CVAT treats as no object.
        present = [c for c in np.unique(mask).tolist() if c != cs.ignore_index]
        inst_lut = np.zeros(256, np.uint8)
        for number, cid in enumerate(present, 1):
            inst_lut[cid] = number
        inst_colors = np.array([voc_color(i) for i in range(256)], np.uint8)
        instance = inst_colors[inst_lut[mask]]
        for sub, rgb in ((CLASS_DIR, color), (OBJECT_DIR, instance)):
            path = self.out / sub / f"{stem}.png"
            if not write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OSError(f"{path}: cannot write")
        self.stems.append(stem)

    def discard(self, stem: str) -> None:
        """Forget ``stem`` and delete what :meth:`add` wrote of it (an interrupted frame)."""
        if stem in self.stems:
            self.stems.remove(stem)
        for sub in (CLASS_DIR, OBJECT_DIR):
            (self.out / sub / f"{stem}.png").unlink(missing_ok=True)

    def close(self, zip_path: Optional[Path] = None) -> None:
        # Stems as spelled on disk, the list as UTF-8 (as CVAT and CvatExport.open read it):
        # under LC_ALL=C a non-ASCII stem's surrogate escapes were refused by the codec.
        (self.out / LIST_DIR / "default.txt").write_text(
            "".join(f"{as_text(s)}\n" for s in self.stems), encoding="utf-8",
            errors="surrogateescape")
        if zip_path is not None:
            with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(self.out.rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(self.out).as_posix())


def write_cvat_package(out: Path, class_set: ClassSet,
                       items: Iterable[Tuple[str, np.ndarray]],
                       zip_path: Optional[Path] = None) -> Path:
    """Write (stem, index mask) items as a CVAT package in ``out`` (and a zip of it)."""
    writer = PackageWriter(Path(out), class_set)
    for stem, mask in items:
        writer.add(stem, mask)
    writer.close(zip_path)
    return Path(out)


# -- reading exports -------------------------------------------------------------------
_NAME_MAX = 255  # bytes in one file name: ext4, XFS, Btrfs, APFS; NTFS counts UTF-16 units


def unsafe_frame_name(name: str) -> Optional[str]:
    """Why the list entry ``name`` cannot be a frame inside the export, else None.

    Its mask is SegmentationClass/<name>.png: an absolute path or a '..' part would read a
    file outside the export (outside the zip, on import), so neither is followed.
    """
    if "\\" in name:  # a folder separator on Windows, a name character elsewhere
        return "has a backslash; frame names use '/' between folders"
    if "\0" in name:
        return "has a NUL character"
    if name.startswith("/"):
        return "is an absolute path; frames are named relative to SegmentationClass/"
    parts = name.split("/")
    if ".." in parts:
        return "has a '..' part, which leaves SegmentationClass/"
    if "." in parts or "" in parts:
        return "has an empty or '.' part; not a frame name"
    files = parts[:-1] + [f"{parts[-1]}.png"]
    if any(len(_name_bytes(p)) > _NAME_MAX for p in files):
        return f"is longer than a file name may be ({_NAME_MAX} bytes with '.png')"
    return None


def _name_bytes(part: str) -> bytes:
    # A name as spelled on disk holds a byte the locale cannot decode as a surrogate escape:
    # one byte, not the three surrogatepass would count.
    try:
        return part.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return part.encode("utf-8", "surrogatepass")


def is_cvat_export(root: Path) -> bool:
    return (root / LABELMAP).is_file() or (root / CLASS_DIR).is_dir()


@dataclass
class CvatExport:
    """A CVAT "Segmentation mask 1.1" export folder."""

    root: Path
    labels: List[Tuple[str, Color]]
    # ImageSets/Segmentation/<subset>.txt -> frame names, as spelled on disk (fs_names): the
    # lists are UTF-8, and under LC_ALL=C a listed 'фото_0' was never the mask that is there.
    subsets: Dict[str, List[str]]

    @classmethod
    def open(cls, root: Path) -> CvatExport:  # noqa: A003 (a constructor, as Image.open)
        labels = read_labelmap(root / LABELMAP)
        subsets: Dict[str, List[str]] = {}
        problems: List[str] = []
        lists = root / LIST_DIR
        for path in sorted(lists.glob("*.txt")) if lists.is_dir() else []:
            names = []
            for number, line in enumerate(read_list_text(path).splitlines(), 1):
                name = line.strip()
                why = unsafe_frame_name(name) if name else None
                if why:
                    problems.append(f"{path}:{number}: frame {name!r} {why}")
                if name and not why:
                    names.append(on_disk(name))
            subsets[path.stem] = names
        if problems:  # a mask read from outside the export would be imported unseen
            raise DatasetProblems(str(lists), capped(problems, "unusable frame names"))
        if not subsets:  # no lists: every mask present
            masks = root / CLASS_DIR
            subsets["default"] = sorted(p.relative_to(masks).with_suffix("").as_posix()
                                        for p in masks.rglob("*.png")) if masks.is_dir() else []
        return cls(root, labels, subsets)

    def stems(self) -> List[str]:
        seen: Dict[str, None] = {}
        for names in self.subsets.values():
            seen.update((n, None) for n in names)
        return list(seen)

    def mask_path(self, stem: str) -> Path:
        why = unsafe_frame_name(stem)
        if why:  # open() refuses such list entries; a stem from elsewhere must not escape
            raise DatasetError(f"{self.root / LIST_DIR}: frame {as_text(stem)!r} {why}")
        return self.root / CLASS_DIR / f"{stem}.png"

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

import copy
import errno
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Set, Tuple

import cv2

from ..classes import ClassSet
from ..errors import DatasetError
from ..fs_names import as_text
from ..image_files import ImageFileError, read_image, save_image
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

REMOVED_DIR = "masks_removed"  # where a re-import moves masks of frames the export lacks
# The new masks are written here, beside masks/ on the same file system, so that each one
# replaces its old mask by a rename: an old mask is then the old file or the new one, never
# a file cut short by a full disk or a kill (a move from /tmp is a copy over the old file).
STAGING_DIR = ".canet_import_staging"
SHOWN_NAMES = 5  # frame names given in a warning; the rest are counted


def find_export_root(folder: Path) -> Path:
    """Return the folder holding labelmap.txt: ``folder`` itself or one level down (a zip's top)."""
    if is_cvat_export(folder):
        return folder
    inner = [p for p in folder.iterdir() if p.is_dir() and is_cvat_export(p)]
    if len(inner) == 1:
        return inner[0]
    raise DatasetError(f"{folder}: not a CVAT 'Segmentation mask 1.1' export (no {LABELMAP} "
                       f"or {CLASS_DIR}/)")


_ENCRYPTED = 0x1  # general purpose flag bit 0: encrypted (ZipCrypto or WinZip AES)
_UTF8_NAME = 0x800  # general purpose flag bit 11: the name is UTF-8 (else cp437)
# Most bytes a member may declare unpacked: 256 MiB, above a colour mask of a 2^26-pixel
# frame (image_codec's limit, 67 MP) stored without any compression (192 MiB). A zip of a
# few KB can declare gigabytes; zipfile stops at the declared size, so this bounds the disk.
MAX_MEMBER_BYTES = 256 << 20
# The two members of a name clash (a file 'a' and a file 'a/b') fail with one of these.
_CLASH = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)


def _member_error(exc: BaseException, info: zipfile.ZipInfo) -> str:
    """Why ``info`` cannot be unpacked, without the temporary folder it was going to."""
    if isinstance(exc, NotImplementedError):
        return (f"compression method {info.compress_type} is not supported by Python's "
                f"zipfile; zip the export again with deflate")
    if isinstance(exc, OSError) and exc.errno in _CLASH:
        return f"{exc.strerror}: another member has this name as a file and as a folder"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _read_by_import(name: str) -> bool:
    """Say whether the import reads the zip member ``name`` (what ``CvatExport`` opens).

    labelmap.txt, ImageSets/Segmentation/*.txt and SegmentationClass/**.png, at the zip's
    top or one folder down (``find_export_root``); folders, for the layout.
    """
    if name.endswith("/"):
        return True
    parts = name.split("/")
    for rest in (parts, parts[1:]):
        if (rest == [LABELMAP] or (len(rest) >= 2 and rest[0] == CLASS_DIR
                                   and rest[-1].endswith(".png"))
                or (len(rest) == 3 and rest[:2] == list(LIST_DIR.parts)
                    and rest[2].endswith(".txt"))):
            return True
    return False


def _named_on_disk(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """Return ``info`` named as Python spells on disk the bytes the zip stores for its name.

    zipfile decodes a name as UTF-8 where the zip says so, else as cp437, and writes that
    text in the filesystem encoding: under LC_ALL=C a non-ASCII member could not be unpacked
    ('ascii' codec can't encode), and a zip without the flag (Info-ZIP's ``zip -r`` of an
    export on Linux) gave its UTF-8 frame names as cp437 mojibake, masks its lists never
    named. The bytes are the name ``unzip`` gives the file, and the lists (UTF-8) spell.
    """
    try:
        raw = info.filename.encode("utf-8" if info.flag_bits & _UTF8_NAME else "cp437")
    except UnicodeEncodeError:  # not decoded from cp437 (a newer zipfile's extra field)
        raw = info.filename.encode("utf-8", "surrogateescape")
    member = copy.copy(info)  # orig_filename, which zipfile checks the member's header by, stays
    member.filename = os.fsdecode(raw)
    return member


def _unpack(source: Path, tmp: Path) -> Path:
    """Unpack the members the import reads into ``tmp``; DatasetError names zip and member.

    Other members (SegmentationObject/, the frames, anything else) are never read, so
    neither unpacked nor checked: a zip may hold gigabytes the import has no use for.
    """
    try:
        zf = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{source}: not a readable zip file ({exc})") from None
    tmp.mkdir(parents=True, exist_ok=True)  # a zip with none of them is "not an export"
    with zf:
        seen: Set[str] = set()
        for info in zf.infolist():
            if not _read_by_import(info.filename):
                continue
            member = _named_on_disk(info)
            where = f"{source}:{member.filename}"
            if info.flag_bits & _ENCRYPTED:  # zipfile would ask for a password
                raise DatasetError(f"{where}: encrypted; export from CVAT again, or unzip "
                                   f"it with its password and import the folder")
            if info.filename in seen:  # the later copy would silently replace the first
                raise DatasetError(f"{where}: in the zip twice; which one is meant is unclear")
            seen.add(info.filename)
            if info.file_size > MAX_MEMBER_BYTES:
                raise DatasetError(f"{where}: {info.file_size} bytes unpacked, more than the "
                                   f"{MAX_MEMBER_BYTES >> 20} MiB a member may have (a colour "
                                   f"mask of a 67 MP frame is at most 192 MiB); not unpacked")
            try:
                zf.extract(member, tmp)  # zipfile drops absolute paths and '..' parts
            except Exception as exc:  # noqa: BLE001 (each decompressor has its own errors)
                raise DatasetError(f"{where}: cannot unpack "
                                   f"({_member_error(exc, info)})") from None
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
    # IMREAD_COLOR as the loaders: a JPEG turned by its EXIF orientation, as annotators saw it.
    try:
        frame = read_image(image, cv2.IMREAD_COLOR)
    except ImageFileError as exc:
        raise DatasetError(f"{exc}; nothing imported") from None
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
            missing.append(f"{path}: missing (frame {as_text(stem)!r} is listed in {LIST_DIR})")
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
        try:  # a lost mask would go unnoticed until training
            save_image(staging / f"{name}.png", ids)
        except OSError as exc:
            raise _write_error(into, exc, False) from None
    if existing:
        problems.append(f"{into / 'masks'}: {len(existing)} masks would be replaced (e.g. "
                        f"{existing[0]}); pass --overwrite to replace them")
    problems += capped(missing, "missing masks") + capped(no_image, "masks without images")
    problems += capped(unknown, "masks with unknown colours") + capped(sizes, "size mismatches")
    return problems, counts


def _check(source: Path, into: Path, tmp: Path, staging: Path,
           overwrite: bool) -> Tuple[ClassSet, bool, Dict[str, int]]:
    """Unpack and check the export whole, writing its index masks into ``staging``.

    Return (classes, whether classes.yaml is to be written, counts); DatasetProblems
    lists everything wrong.
    """
    folder = source if source.is_dir() else _unpack(source, tmp / "export")
    export = CvatExport.open(find_export_root(folder))
    class_set, write_classes, problems = _import_classes(into, export)
    counts = {"frames": 0, "unlabelled_frames": 0}
    if not problems:
        more, counts = _convert_all(export, into, class_set, staging, overwrite)
        problems += more
    if not problems and not export.stems():
        problems.append(f"{export.root}: the export lists no frames")
    if problems:
        raise DatasetProblems(f"{source}: nothing imported", problems)
    return class_set, write_classes, counts


def _in_zip(text: str, unpacked: Path, source: Path) -> str:
    """``text`` with paths under ``unpacked`` written ``<zip>:<member>``.

    The zip is unpacked into a temporary folder that is gone by the time the message is
    read; the zip and the member's path in it are what the user can find.
    """
    return text.replace(f"{unpacked}{os.sep}", f"{source}:").replace(str(unpacked), str(source))


def _relocated(exc: DatasetError, unpacked: Path, source: Path) -> DatasetError:
    if isinstance(exc, DatasetProblems):
        return DatasetProblems(_in_zip(exc.where, unpacked, source),
                               [_in_zip(p, unpacked, source) for p in exc.problems])
    return DatasetError(_in_zip(str(exc), unpacked, source))


def _some(names: List[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def _move_unlisted(into: Path, kept: Set[str]) -> List[str]:
    """Move masks of frames not in ``kept`` to ``into/masks_removed/``; return their stems.

    A re-import replaces the labelling: a frame deleted in CVAT must not go on training
    with its old mask. Moved, not deleted, as an export of only some frames would
    otherwise destroy the others' labels.
    """
    masks = files_by_stem(into / "masks", (".png",), [], "the index masks")
    stale = sorted(s for s in masks if s not in kept)
    if stale:
        (into / REMOVED_DIR).mkdir(exist_ok=True)
    for stem in stale:  # an older copy there is replaced: the newest labels are kept
        os.replace(masks[stem], into / REMOVED_DIR / masks[stem].name)
    return stale


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def _write_error(into: Path, exc: OSError, changed: bool) -> DatasetError:
    """One line naming the dataset and the cause, not the staging folder (removed by then)."""
    if not changed:
        return DatasetError(f"{into}: cannot write the new masks ({_why(exc)}); nothing "
                            f"imported, the masks already in {into / 'masks'} are unchanged")
    return DatasetError(f"{into}: cannot put the new masks in place ({_why(exc)}); each mask "
                        f"in {into / 'masks'} is whole, old or new: import again "
                        f"once this is fixed")


def _make_staging(into: Path) -> Path:
    staging = into / STAGING_DIR
    try:
        shutil.rmtree(staging, ignore_errors=True)  # what a killed import left
        staging.mkdir()
    except OSError as exc:
        raise _write_error(into, exc, False) from None
    return staging


def _install(into: Path, staging: Path, overwrite: bool, keep_other_masks: bool) -> List[str]:
    """Move the staged masks into ``into/masks``: renames within one file system."""
    staged = sorted(staging.iterdir())
    removed: List[str] = []
    replaced = 0
    try:
        if overwrite and not keep_other_masks:
            removed = _move_unlisted(into, {p.stem for p in staged})
        (into / "masks").mkdir(exist_ok=True)
        for path in staged:
            os.replace(path, into / "masks" / path.name)  # atomic: the old mask or the new
            replaced += 1
    except OSError as exc:  # _move_unlisted may have moved some before it failed
        changed = replaced > 0 or (overwrite and not keep_other_masks)
        raise _write_error(into, exc, changed) from None
    return removed


def _save_classes(into: Path, class_set: ClassSet, masks: int) -> None:
    try:
        save_classes(into, class_set)
    except OSError as exc:
        raise DatasetError(f"{into / CLASSES_FILE}: cannot write ({_why(exc)}); the {masks} "
                           f"masks are imported: import again once this is fixed, to write "
                           f"it") from None


def _warnings(into: Path, removed: List[str]) -> List[str]:
    lines = []
    if removed:
        lines.append(f"{len(removed)} masks of frames not in this export ({_some(removed)}) "
                     f"moved to {into / REMOVED_DIR}: they no longer train; to keep them, "
                     f"move them back to {into / 'masks'} (or import with "
                     f"--keep-other-masks)")
    images = files_by_stem(into / "images", _IMAGE_EXTS, [], "the frames")
    masks = files_by_stem(into / "masks", (".png",), [], "the index masks")
    bare = sorted(s for s in images if s not in masks)
    if bare:
        lines.append(f"{len(bare)} frames in {into / 'images'} have no mask, as the export "
                     f"does not have them ({_some(bare)}); dataset check refuses them: "
                     f"label them in CVAT and export again, or, if deleted in CVAT on "
                     f"purpose, delete them from {into / 'images'}")
    return lines


def import_cvat(source: Path, into: Path, overwrite: bool = False,
                keep_other_masks: bool = False) -> Dict[str, object]:
    """Turn a CVAT export (zip or folder) into ``into/masks/<stem>.png`` index masks.

    Every mask is checked before anything is written; DatasetProblems lists all that is
    wrong (a colour not in labelmap.txt names the file and the colour; a file in a zip
    as ``<zip>:<member>``). With ``overwrite`` the export replaces the labelling: masks of
    frames it does not have are moved to ``into/masks_removed/``, unless
    ``keep_other_masks``. ``warnings`` names frames left without a mask.
    """
    source, into = Path(source), Path(into)
    if not source.exists():
        raise DatasetError(f"{source}: no such file or folder")
    if not into.is_dir():
        raise DatasetError(f"{into}: no such folder (the extract-frames output to label)")
    staging = _make_staging(into)
    try:
        with tempfile.TemporaryDirectory(prefix="canet_cvat_") as tmp:
            unpacked = Path(tmp) / "export"
            try:
                class_set, write_classes, counts = _check(source, into, Path(tmp), staging,
                                                          overwrite)
            except DatasetError as exc:
                raise (exc if source.is_dir() else _relocated(exc, unpacked, source)) from None
        removed = _install(into, staging, overwrite, keep_other_masks)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if write_classes:
        _save_classes(into, class_set, counts["frames"])
    warnings = _warnings(into, removed)
    if not source.is_dir():
        warnings = [_in_zip(w, unpacked, source) for w in warnings]
    return {"source": str(source), "into": str(into), "masks": counts["frames"],
            "unlabelled_frames": counts["unlabelled_frames"], "removed_masks": removed,
            "classes": list(class_set.names), "wrote_classes_yaml": write_classes,
            "warnings": warnings}

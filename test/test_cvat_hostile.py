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

"""Hostile or odd input to import-cvat and the mask readers.

Zips the importer cannot unpack (encrypted, an unknown compression, names the file
system refuses), frame lists that point outside the export, and palette PNG masks, whose
indices are the class ids (Pascal VOC's convention).
"""
from __future__ import annotations

import struct
import warnings
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
from PIL import Image
from test_cvat import CAMVID, extract_folder, masks

from canet_ros.classes import ClassSet
from canet_ros.cli import main
from canet_ros.data import (
    DatasetError,
    DatasetProblems,
    FolderDataset,
    check_dataset,
    import_cvat,
    write_cvat_package,
    write_dataset,
)
from canet_ros.data.cvat import CvatExport, voc_color
from canet_ros.data.files import read_index_mask

LIST = "ImageSets/Segmentation/default.txt"
TEMP_PREFIX = "canet_cvat_"  # import_cvat's temporary folder, gone when the error is read


def package(tmp_path: Path, n: int = 3) -> Tuple[Path, Dict[str, bytes], Dict]:
    """(extract folder to import into, the package's members by name, the index masks)."""
    labels = masks(CAMVID, n=n)
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, labels.items())
    members = {p.relative_to(pkg).as_posix(): p.read_bytes()
               for p in sorted(pkg.rglob("*")) if p.is_file()}
    return folder, members, labels


def write_zip(path: Path, entries: List[Tuple[str, bytes]]) -> Path:
    with warnings.catch_warnings():  # zipfile warns of a duplicate name, a case below
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def patch_headers(path: Path, field: str, value: int) -> None:
    """Set a field of every local and central header, as another zip tool would write it.

    Layout from PKWARE's APPNOTE (4.3.7, 4.3.12, 4.3.16): flags at byte 6 of a local
    header and 8 of a central one, the compression method at 8 and 10; the end record
    gives the central directory's offset at its byte 16.
    """
    local, central = {"flags": (6, 8), "method": (8, 10)}[field]
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        starts = [info.header_offset for info in zf.infolist()]
    end = data.rfind(b"PK\x05\x06")
    at = struct.unpack_from("<I", data, end + 16)[0]
    fields = []
    for start in starts:
        assert data[start:start + 4] == b"PK\x03\x04"
        fields.append(start + local)
    for _ in starts:
        assert data[at:at + 4] == b"PK\x01\x02"
        fields.append(at + central)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + name_len + extra_len + comment_len
    for offset in fields:
        old = struct.unpack_from("<H", data, offset)[0]
        struct.pack_into("<H", data, offset, old | value if field == "flags" else value)
    path.write_bytes(bytes(data))


def cli_error(capsys, source: Path, into: Path) -> str:
    """Return the one line ``canet dataset import-cvat`` prints for a refused import (status 1)."""
    assert main(["dataset", "import-cvat", str(source), "--into", str(into)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and TEMP_PREFIX not in err
    return err


# -- zips that cannot be unpacked ------------------------------------------------------
@pytest.mark.parametrize("flags,method", [(0x1, None), (0x1, 99)],
                         ids=["zipcrypto", "winzip-aes"])
def test_encrypted_zip_is_one_line_naming_the_member(tmp_path, capsys, flags, method):
    folder, members, _ = package(tmp_path)
    first = sorted(members)[0]
    export = write_zip(tmp_path / "export.zip", sorted(members.items()))
    patch_headers(export, "flags", flags)
    if method is not None:  # WinZip AES: flag bit 0 and method 99 (APPNOTE 4.4.5)
        patch_headers(export, "method", method)
    err = cli_error(capsys, export, folder)
    assert err.startswith(f"canet dataset: error: {export}:{first}: encrypted;")
    assert err.count("\n") == 1
    assert not (folder / "masks").exists()


@pytest.mark.parametrize("method", [9, 93, 98], ids=["deflate64", "zstd", "ppmd"])
def test_unsupported_compression_names_the_member(tmp_path, capsys, method):
    folder, members, _ = package(tmp_path)
    first = sorted(members)[0]
    export = write_zip(tmp_path / "export.zip", sorted(members.items()))
    patch_headers(export, "method", method)
    err = cli_error(capsys, export, folder)
    assert err.startswith(f"canet dataset: error: {export}:{first}: cannot unpack (")
    assert err.count("\n") == 1


def test_name_too_long_for_the_file_system_names_zip_and_member(tmp_path):
    folder, members, _ = package(tmp_path)
    # file names are at most 255 bytes on Linux; under SegmentationClass/, as the import
    # unpacks only what it reads
    long_name = "SegmentationClass/" + "a" * 300 + ".png"
    export = write_zip(tmp_path / "export.zip", sorted(members.items()) + [(long_name, b"x")])
    with pytest.raises(DatasetError) as exc:
        import_cvat(export, folder)
    assert str(exc.value).startswith(f"{export}:{long_name}: cannot unpack (")
    assert TEMP_PREFIX not in str(exc.value)


@pytest.mark.parametrize("file_first", [True, False],
                         ids=["file-then-folder", "folder-then-file"])
def test_a_file_and_a_folder_of_one_name_are_named(tmp_path, capsys, file_first):
    folder, members, _ = package(tmp_path)
    entries = sorted(members.items())
    mask = next(n for n, _ in entries if n.startswith("SegmentationClass/"))
    # a member the import reads, as a file and as the folder of another
    clash = (f"{mask}/inner.png", b"x")
    entries = [e for e in entries if e[0] != mask]
    pair = [(mask, members[mask]), clash] if file_first else [clash, (mask, members[mask])]
    entries = pair + entries
    export = write_zip(tmp_path / "export.zip", entries)
    # The second of the two to be unpacked is the one that cannot be.
    second = pair[1][0]
    err = cli_error(capsys, export, folder)
    assert err.startswith(f"canet dataset: error: {export}:{second}: cannot unpack (")
    assert "another member has this name as a file and as a folder" in err


def test_a_member_twice_in_the_zip_is_refused(tmp_path):
    """Unpacked in turn, the later copy would replace the first without a word."""
    folder, members, labels = package(tmp_path)
    stem = sorted(labels)[0]
    other = f"SegmentationClass/{sorted(labels)[1]}.png"
    entries = sorted(members.items()) + [(f"SegmentationClass/{stem}.png", members[other])]
    export = write_zip(tmp_path / "export.zip", entries)
    with pytest.raises(DatasetError, match=f"{export}:SegmentationClass/{stem}.png: in the "
                                           f"zip twice"):
        import_cvat(export, folder)
    assert not (folder / "masks").exists()


def test_an_export_one_folder_down_in_the_zip_imports(tmp_path):
    """A zip made by compressing the export's folder holds every member under its name."""
    folder, members, labels = package(tmp_path)
    extra = {"SegmentationObject/x.png": b"unread", "JPEGImages/x.jpg": b"unread"}
    entries = [(f"task_7/{n}", d) for n, d in sorted({**members, **extra}.items())]
    result = import_cvat(write_zip(tmp_path / "export.zip", entries), folder)
    assert result["masks"] == len(labels)
    for stem, mask in labels.items():
        back = cv2.imread(str(folder / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back, mask)


# -- frame lists that point outside the export -----------------------------------------
def outside_mask(tmp_path: Path, members: Dict[str, bytes], folder: Path) -> Path:
    """Write a valid colour mask and its frame outside the export: what an escape would import."""
    colour = next(d for n, d in sorted(members.items()) if n.startswith("SegmentationClass/"))
    (tmp_path / "elsewhere").mkdir()
    outside = tmp_path / "elsewhere" / "outside.png"
    outside.write_bytes(colour)
    image = next((folder / "images").iterdir())
    (folder / "images" / f"outside{image.suffix}").write_bytes(image.read_bytes())
    return outside


def hostile_entries(outside: Path) -> Dict[str, str]:
    stem = outside.with_suffix("").as_posix()
    return {"absolute": stem,
            "dotdot": "../" * 40 + stem.lstrip("/"),  # up to / from any temporary folder
            "backslash": "..\\..\\outside",
            "dot": "."}


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "backslash", "dot"])
def test_list_entries_leaving_the_export_are_refused(tmp_path, kind):
    folder, members, labels = package(tmp_path)
    outside = outside_mask(tmp_path, members, folder)
    entry = hostile_entries(outside)[kind]
    listed = "".join(f"{s}\n" for s in labels) + f"{entry}\n"
    entries = [(n, d) for n, d in sorted(members.items()) if n != LIST] + [(LIST, listed)]
    export = write_zip(tmp_path / "export.zip", entries)
    with pytest.raises(DatasetProblems) as exc:
        import_cvat(export, folder)
    number = len(labels) + 1  # the entry's line in the list
    (found,) = exc.value.problems
    assert found.startswith(f"{export}:{LIST}:{number}: frame {entry!r} ")
    assert not (folder / "masks").exists()


def test_a_cvat_folder_as_dataset_refuses_them_too(tmp_path):
    folder, members, labels = package(tmp_path)
    outside = outside_mask(tmp_path, members, folder)
    export = folder / "export"  # unpacked inside the extract folder: frames in images/
    for name, data in members.items():
        (export / name).parent.mkdir(parents=True, exist_ok=True)
        (export / name).write_bytes(data)
    entry = hostile_entries(outside)["dotdot"]
    (export / LIST).write_text("".join(f"{s}\n" for s in labels) + f"{entry}\n")
    with pytest.raises(DatasetProblems) as exc:
        check_dataset(export)
    assert exc.value.problems[0] == (f"{export / LIST}:{len(labels) + 1}: frame {entry!r} "
                                     f"has a '..' part, which leaves SegmentationClass/")


@pytest.mark.parametrize("stem", ["/etc/passwd", "../x", "a/../../x", "a\\b", "b" * 252])
def test_mask_path_refuses_names_outside_segmentation_class(tmp_path, stem):
    export = CvatExport(tmp_path, [("background", (0, 0, 0))], {"default": [stem]})
    with pytest.raises(DatasetError, match="frame"):
        export.mask_path(stem)
    assert export.mask_path("left/f0") == tmp_path / "SegmentationClass" / "left" / "f0.png"


# -- palette PNG masks -----------------------------------------------------------------
VOC_PALETTE = [v for i in range(256) for v in voc_color(i)]


def palette_png(path: Path, ids: np.ndarray, bits: int = 8) -> Path:
    image = Image.fromarray(ids, mode="P")
    image.putpalette(VOC_PALETTE)
    image.save(path, bits=bits) if bits != 8 else image.save(path)
    return path


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_a_palette_mask_reads_as_its_indices(tmp_path, bits):
    ids = np.array([[0, 1, 2, 1], [2, 0, 1, 2], [1, 1, 0, 0]], np.uint8)
    path = palette_png(tmp_path / "m.png", ids, bits)
    assert Image.open(path).mode == "P"
    # OpenCV gives the colours, VOC's (128, 0, 0) for 1: not class ids.
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (3, 4, 3)
    got = read_index_mask(path)
    assert got.dtype == np.uint8 and got.shape == ids.shape
    np.testing.assert_array_equal(got, ids)


def test_a_dataset_of_palette_masks_checks_and_loads(tmp_path):
    three = ClassSet("three", ("a", "b", "c"), ((1, 1, 1), (2, 2, 2), (3, 3, 3)), 255)
    rng = np.random.default_rng(4)
    items = []
    for i in range(5):  # the 5th is the val frame
        mask = rng.integers(0, 3, (12, 16)).astype(np.uint8)
        mask[0, :4] = 255  # the ignore id is an index too
        items.append((f"f{i}", rng.integers(0, 255, (12, 16, 3)).astype(np.uint8), mask))
    root = write_dataset(tmp_path / "voc", three, items)
    for stem, _, mask in items:
        palette_png(root / "masks" / f"{stem}.png", mask)
    assert check_dataset(root).frames == {"train": 4, "val": 1}
    train = FolderDataset(root, "train")  # what training reads
    for i in range(len(train)):
        np.testing.assert_array_equal(train.load(i)[1], items[int(train.name(i)[1:])][2])


def test_a_colour_mask_is_still_refused_and_a_broken_palette_named(tmp_path):
    ids = np.array([[0, 1], [2, 1]], np.uint8)
    rgb = np.array([[voc_color(int(i)) for i in row] for row in ids], np.uint8)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    with pytest.raises(DatasetError, match=r"rgb\.png: a colour image"):
        read_index_mask(tmp_path / "rgb.png")
    data = palette_png(tmp_path / "p.png", np.tile(ids, (40, 40))).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])  # IDAT cut short
    with pytest.raises(DatasetError, match=r"cut\.png: cannot decode"):
        read_index_mask(tmp_path / "cut.png")

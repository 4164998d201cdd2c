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

"""Awkward inputs to ``canet dataset``: class and frame names, list encodings, PNG depths."""
from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_cvat import ROAD, extract_folder, masks
from test_own_dataset import THREE, dataset

from canet_ros.classes import ClassSet
from canet_ros.cli import main
from canet_ros.data import (
    DatasetError,
    DatasetProblems,
    check_dataset,
    import_cvat,
    write_cvat_package,
    write_dataset,
)
from canet_ros.data.cvat import read_labelmap

CAPITAL = ClassSet("cap", ("Road", "Car", "Background"),
                   ((128, 64, 128), (0, 0, 142), (70, 70, 70)), 255)
IGNORE_CLASS = ClassSet("ign", ("road", "IGNORE"), ((128, 64, 128), (9, 9, 9)), 255)


def read_back(folder: Path, stem: str) -> np.ndarray:
    return cv2.imread(str(folder / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("class_set", [CAPITAL, IGNORE_CLASS], ids=["Background", "IGNORE"])
@pytest.mark.parametrize("with_yaml", [True, False], ids=["classes.yaml", "labelmap"])
def test_round_trip_is_exact_whatever_the_case_of_class_names(tmp_path, class_set, with_yaml):
    labels = masks(class_set, n=2)
    folder = extract_folder(tmp_path / "data", class_set, labels)
    if not with_yaml:
        (folder / "classes.yaml").unlink()
    write_cvat_package(folder / "cvat", class_set, labels.items(), tmp_path / "c.zip")
    names = [n.lower() for n, _ in read_labelmap(folder / "cvat" / "labelmap.txt")]
    assert len(set(names)) == len(names)  # no label clashes with a class, in any case
    result = import_cvat(tmp_path / "c.zip", folder)
    assert result["classes"] == list(class_set.names)
    for stem, mask in labels.items():
        assert (mask == 255).any()
        np.testing.assert_array_equal(read_back(folder, stem), mask)


def test_classes_background_and_ignore_leave_no_label_for_ignored_pixels(tmp_path):
    both = ClassSet("both", ("Background", "Ignore"), ((1, 1, 1), (2, 2, 2)), 255)
    with pytest.raises(DatasetError, match="no CVAT label for the ignored pixels"):
        write_cvat_package(tmp_path / "cvat", both, masks(both, n=1).items())


def test_undecodable_frame_is_one_error_line_and_nothing_written(tmp_path, capsys):
    labels = masks(ROAD, n=2)
    folder = extract_folder(tmp_path / "data", ROAD, labels)
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, labels.items())
    bad = folder / "images" / f"{next(iter(labels))}.png"
    bad.write_bytes(b"not a png")
    assert main(["dataset", "import-cvat", str(pkg), "--into", str(folder)]) == 1
    err = one_error_line(capsys)
    assert err.startswith(f"canet dataset: error: {bad}: cannot decode")
    assert not (folder / "masks").exists()


def test_frame_with_glob_characters_in_its_name_is_found(tmp_path):
    mask = next(iter(masks(ROAD, n=1).values()))
    labels = {"cam[left]_0001": mask, "cam*_?": mask}
    folder = extract_folder(tmp_path / "data", ROAD, labels)
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, labels.items())
    assert import_cvat(pkg, folder)["masks"] == 2
    for stem in labels:
        np.testing.assert_array_equal(read_back(folder, stem), mask)


def test_mask_is_not_paired_with_a_frame_whose_name_only_starts_like_it(tmp_path):
    folder = write_dataset(tmp_path / "data", ROAD, [
        ("f1.left", np.zeros((16, 20, 3), np.uint8), np.zeros((16, 20), np.uint8))])
    shutil.rmtree(folder / "masks")
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, [("f1", np.zeros((16, 20), np.uint8))])
    with pytest.raises(DatasetProblems, match=r"f1\.png: no image"):
        import_cvat(pkg, folder)
    assert not (folder / "masks").exists()


def nested_export(tmp_path: Path) -> Path:
    """Return a CVAT export whose frames left/f0 and right/f0 live in folders."""
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, [])
    palette = np.array(ROAD.palette()[:5], np.uint8)
    for sub, cid in (("left", 0), ("right", 2)):
        (pkg / "SegmentationClass" / sub).mkdir()
        mask = np.full((12, 16), cid, np.uint8)
        cv2.imwrite(str(pkg / "SegmentationClass" / sub / "f0.png"), palette[mask][..., ::-1])
    (pkg / "ImageSets" / "Segmentation" / "default.txt").write_text("left/f0\nright/f0\n")
    return pkg


def test_frames_in_folders_with_one_name_are_refused(tmp_path):
    folder = write_dataset(tmp_path / "data", ROAD, [
        ("f0", np.zeros((12, 16, 3), np.uint8), np.zeros((12, 16), np.uint8))])
    shutil.rmtree(folder / "masks")
    pkg = nested_export(tmp_path)
    with pytest.raises(DatasetProblems, match="'left/f0' and 'right/f0' both become 'f0'"):
        import_cvat(pkg, folder)
    assert not (folder / "masks").exists()
    # The export read as a dataset in place says the same.
    shutil.copytree(folder / "images", pkg / "JPEGImages")
    with pytest.raises(DatasetProblems, match="'left/f0' and 'right/f0' both become 'f0'"):
        check_dataset(pkg)


def test_list_that_is_not_utf8_is_one_error_line(tmp_path, capsys):
    root = dataset(tmp_path / "d")
    (root / "train.txt").write_bytes(b"frame_00\n# caf\xe9\n")
    assert main(["dataset", "check", str(root)]) == 1
    assert f"{root / 'train.txt'}: not UTF-8" in one_error_line(capsys)
    labels = masks(ROAD, n=1)
    folder = extract_folder(tmp_path / "data", ROAD, labels)
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, labels.items())
    listed = pkg / "ImageSets" / "Segmentation" / "default.txt"
    listed.write_bytes(listed.read_bytes() + b"# \xe9\n")
    assert main(["dataset", "import-cvat", str(pkg), "--into", str(folder)]) == 1
    assert f"{listed}: not UTF-8" in one_error_line(capsys)
    assert not (folder / "masks").exists()


def test_list_with_a_utf8_bom_reads(tmp_path):
    root = dataset(tmp_path / "d", n=5)
    (root / "val.txt").write_bytes("\ufeffframe_00\r\nframe_01\r\n".encode("utf-8"))
    assert check_dataset(root).frames == {"train": 3, "val": 2}
    labels = masks(ROAD, n=2)
    folder = extract_folder(tmp_path / "data", ROAD, labels)
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, labels.items())
    listed = pkg / "ImageSets" / "Segmentation" / "default.txt"
    listed.write_bytes(b"\xef\xbb\xbf" + listed.read_bytes())
    assert import_cvat(pkg, folder)["masks"] == 2


def grey_png(path: Path, values: np.ndarray, bits: int) -> None:
    """Write ``values`` as a greyscale PNG of ``bits`` per pixel (rows packed MSB first)."""
    h, w = values.shape
    per_byte = 8 // bits
    rows = []
    for row in values:
        padded = np.zeros(-(-w // per_byte) * per_byte, np.uint8)
        padded[:w] = row
        groups = padded.reshape(-1, per_byte)
        packed = sum(groups[:, i].astype(np.int32) << (8 - bits * (i + 1))
                     for i in range(per_byte))
        rows.append(b"\x00" + packed.astype(np.uint8).tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, bits, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_low_bit_greyscale_masks_read_as_their_values(tmp_path, bits):
    n = min(1 << bits, 3)
    cs = ClassSet("low", THREE.names[:n], THREE.colors[:n], 255)
    rng = np.random.default_rng(bits)
    items = [(f"f{i}", rng.integers(0, 255, (12, 16, 3)).astype(np.uint8),
              rng.integers(0, n, (12, 16)).astype(np.uint8)) for i in range(5)]
    root = write_dataset(tmp_path / "d", cs, items)
    for stem, _, mask in items:
        grey_png(root / "masks" / f"{stem}.png", mask, bits)
        if bits == 1:  # what PIL writes for a two-class mask, the common case
            Image.fromarray(mask.astype(bool)).save(root / "masks" / f"{stem}.png")
    summary = check_dataset(root)
    expected = np.bincount(np.concatenate([m.ravel() for _, _, m in items]), minlength=n)
    assert list(summary.pixels.values()) == expected.tolist()
    assert summary.ignored_pixels == 0
    if bits == 4:  # values past the classes are still caught, not scaled into range
        grey_png(root / "masks" / "f0.png", np.full((12, 16), 9, np.uint8), bits)
        with pytest.raises(DatasetProblems, match=r"ids \[9\] outside the 3 classes"):
            check_dataset(root)

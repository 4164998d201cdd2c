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

"""read_image/write_image: what cv2.imread/cv2.imwrite give, also for names that are not UTF-8.

OpenCV crashes the process (SIGSEGV) on a path string holding a byte that is not UTF-8;
canet_ros hands it bytes in memory instead. On ordinary paths nothing may change, so every
case here is compared with OpenCV's own file functions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from canet_ros.image_files import read_image, write_image

FLAGS = {"color": cv2.IMREAD_COLOR, "unchanged": cv2.IMREAD_UNCHANGED,
         "grayscale": cv2.IMREAD_GRAYSCALE, "anydepth": cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR}
NOT_UTF8 = os.fsdecode(b"caf\xe9\xff")  # Latin-1 "é" and a byte no encoding uses


def _jpeg_with_orientation(path: Path, image: np.ndarray, orientation: int) -> None:
    """Write a JPEG whose EXIF says how to turn it (cv2.imread turns IMREAD_COLOR reads)."""
    pil = pytest.importorskip("PIL.Image")
    exif = pil.Exif()
    exif[0x0112] = orientation
    pil.fromarray(image).save(path, exif=exif.tobytes())


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """One file of each kind the readers meet, plus the broken and the absent."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 32, 3), np.uint8)
    for orientation in (1, 3, 6, 8):
        _jpeg_with_orientation(root / f"exif{orientation}.jpg", rgb, orientation)
    cv2.imwrite(str(root / "grey16.png"), rng.integers(0, 65536, (10, 12), np.uint16))
    cv2.imwrite(str(root / "colour16.png"), rng.integers(0, 65536, (10, 12, 3), np.uint16))
    cv2.imwrite(str(root / "grey.png"), rng.integers(0, 256, (10, 12), np.uint8))
    cv2.imwrite(str(root / "rgba.png"), rng.integers(0, 256, (10, 12, 4), np.uint8))
    pil = pytest.importorskip("PIL.Image")
    palette = pil.fromarray(rng.integers(0, 4, (10, 12), np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(root / "palette.png")
    for name in ("exif6.jpg", "colour16.png"):
        data = (root / name).read_bytes()
        (root / f"truncated_{name}").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_bytes(b"not an image\n")
    (root / "folder.png").mkdir()
    return root


CASES = ["exif1.jpg", "exif3.jpg", "exif6.jpg", "exif8.jpg", "grey16.png", "colour16.png",
         "grey.png", "rgba.png", "palette.png", "truncated_exif6.jpg", "truncated_colour16.png",
         "empty.png", "text.png", "folder.png", "missing.png"]


def _same(got: np.ndarray | None, want: np.ndarray | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("name", CASES)
def test_read_matches_imread(samples, name, flag):
    want = cv2.imread(str(samples / name), FLAGS[flag])
    assert _same(read_image(samples / name, FLAGS[flag]), want)
    assert _same(read_image(str(samples / name), FLAGS[flag]), want)


def test_exif_orientation_is_applied_as_imread_applies_it(samples):
    # Guards the comparison above: the tag really is in the file and honoured, so a
    # decoder that ignored it (as cv2.imdecode once did) would fail there.
    assert cv2.imread(str(samples / "exif1.jpg")).shape == (20, 32, 3)
    assert cv2.imread(str(samples / "exif6.jpg")).shape == (32, 20, 3)
    assert read_image(samples / "exif6.jpg").shape == (32, 20, 3)
    assert read_image(samples / "exif8.jpg", cv2.IMREAD_UNCHANGED).shape == (20, 32, 3)


def test_default_flag_is_imreads(samples):
    assert _same(read_image(samples / "rgba.png"), cv2.imread(str(samples / "rgba.png")))


@pytest.mark.parametrize("suffix,image,params", [
    (".png", np.arange(120, dtype=np.uint8).reshape(10, 12), ()),
    (".png", np.arange(360, dtype=np.uint16).reshape(10, 12, 3) * 181, ()),
    (".png", np.arange(480, dtype=np.uint8).reshape(10, 12, 4), (cv2.IMWRITE_PNG_COMPRESSION, 1)),
    (".jpg", np.arange(360, dtype=np.uint8).reshape(10, 12, 3), (cv2.IMWRITE_JPEG_QUALITY, 80)),
    (".PNG", np.zeros((3, 4, 3), np.uint8), ()),
    (".bmp", np.ones((3, 4, 3), np.uint8), ()),
    (".tif", np.ones((3, 4), np.uint16), ()),
])
def test_write_matches_imwrite(tmp_path, suffix, image, params):
    ours, theirs = tmp_path / f"ours{suffix}", tmp_path / f"theirs{suffix}"
    assert write_image(ours, image, params) is True
    assert cv2.imwrite(str(theirs), image, params) is True
    assert ours.read_bytes() == theirs.read_bytes()


def test_write_fails_where_imwrite_fails(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    (tmp_path / "folder.png").mkdir()
    for path in (tmp_path / "no" / "such" / "folder.png", tmp_path / "folder.png"):
        assert cv2.imwrite(str(path), image) is False
        assert write_image(path, image) is False
    for path in (tmp_path / "no_suffix", tmp_path / "x.unknown"):
        with pytest.raises(cv2.error):
            cv2.imwrite(str(path), image)
        with pytest.raises(cv2.error):
            write_image(path, image)


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system taking any bytes")
def test_name_that_is_not_utf8(samples, tmp_path):
    folder = tmp_path / NOT_UTF8
    folder.mkdir()
    image = cv2.imread(str(samples / "colour16.png"), cv2.IMREAD_UNCHANGED)
    path = folder / f"{NOT_UTF8}.png"
    assert write_image(path, image)
    assert os.listdir(os.fsencode(folder)) == [b"caf\xe9\xff.png"]
    assert _same(read_image(path, cv2.IMREAD_UNCHANGED), image)
    # The orientation is applied there too.
    jpeg = folder / f"{NOT_UTF8}.jpg"
    jpeg.write_bytes((samples / "exif6.jpg").read_bytes())
    assert _same(read_image(jpeg), cv2.imread(str(samples / "exif6.jpg")))
    assert read_image(folder / "missing.png") is None
    assert write_image(folder / NOT_UTF8 / "x.png", image) is False


def test_imports_neither_torch_nor_ros():
    code = ("import sys, canet_ros.image_files\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'rclpy'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system taking any bytes")
def test_segment_bag_into_a_folder_whose_name_is_not_utf8(tmp_path):
    # In its own process: the old cv2.imwrite(str(path)) ended it with SIGSEGV (status
    # -11), before report.md and legend.png were written.
    out = tmp_path / f"out{NOT_UTF8}"
    done = subprocess.run([sys.executable, "-m", "canet_ros.cli", "segment-bag", "sample",
                           "--out", str(out), "--resolution", "64x48", "--precision", "fp32",
                           "--no-progress"], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="backslashreplace")
    assert {"report.json", "report.md", "legend.png", "iou.png"} <= set(os.listdir(out))
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["legend"] == "legend.png"
    # report.md names the output as report.json does, escaped, and stays valid UTF-8.
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "outcaf\\udce9\\udcff" in markdown
    legend = read_image(out / "legend.png")
    assert legend is not None and legend.ndim == 3


def test_import_cvat_stops_on_a_mask_it_cannot_stage(tmp_path, monkeypatch):
    # It once ignored cv2.imwrite's False: the import said done with masks missing.
    from test_cvat import extract_folder, masks

    import canet_ros.data.cvat_import as cvat_import
    from canet_ros.classes import CAMVID
    from canet_ros.data import DatasetError, import_cvat, write_cvat_package

    labels = masks(CAMVID, n=2)
    folder = extract_folder(tmp_path / NOT_UTF8, CAMVID, labels)
    pkg = write_cvat_package(folder / "cvat", CAMVID, labels.items())

    def refuse(path, image):
        raise OSError(13, "Permission denied", str(path))

    monkeypatch.setattr(cvat_import, "save_image", refuse)
    with pytest.raises(DatasetError, match=r"cannot write the new masks \(Permission denied\)"):
        import_cvat(pkg, folder)
    assert not (folder / "masks").exists()
    monkeypatch.undo()
    assert import_cvat(pkg, folder)["masks"] == 2  # and through a name that is not UTF-8
    for stem, mask in labels.items():
        assert _same(read_image(folder / "masks" / f"{stem}.png", cv2.IMREAD_UNCHANGED), mask)

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

"""Inputs whose claimed size is hostile: image bombs, zip bombs, megabyte strings.

A PNG of 87 bytes can claim 60000x60000 pixels (OpenCV raises, not returns None, above
its CV_IO_MAX_IMAGE_PIXELS); one claiming 10000x10000 decodes, where its data is whole,
to 300 MB. The bombs here are headers only (an IDAT of one row): every file is tiny, and
what is checked is that the header's claim is refused or named, never decoded.
"""
from __future__ import annotations

import json
import struct
import types
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import (
    HUMBLE,
    Msg,
    compressed_image,
    header,
    labels_for,
    raw_image,
    receive_ns,
    shared_engine,
    write_bag,
)

from canet_ros import image_codec
from canet_ros.bag import SegmentOptions, segment_bag
from canet_ros.cli import main
from canet_ros.data import DatasetError, DatasetProblems, check_dataset, cvat_import, import_cvat
from canet_ros.data.camvid import read_image as camvid_image
from canet_ros.data.camvid import read_label
from canet_ros.data.folder import FolderDataset
from canet_ros.image_files import ImageFileError, encoded_size, read_image

CAM = "/cam/image_raw/compressed"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + tag + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))


def png_claiming(width: int, height: int) -> bytes:
    """Return a 1-bit grey PNG header claiming ``width``x``height``, with one row of data."""
    row = b"\0" * ((width + 7) // 8 + 1)
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(row)) + _chunk(b"IEND", b""))


def jpeg_segments(*segments: tuple[int, bytes]) -> bytes:
    """SOI, then each (marker, payload) with its length field, then EOI."""
    out = b"\xff\xd8"
    for marker, payload in segments:
        out += bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return out + b"\xff\xd9"


def sof(width: int, height: int) -> bytes:
    """Return a start-of-frame payload (T.81 B.2.2): precision, Y, X, one component."""
    return struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"


# -- reading the header ----------------------------------------------------------------
def test_encoded_size_reads_the_claim_of_png_and_jpeg_headers():
    assert encoded_size(png_claiming(60000, 40000)) == (60000, 40000)
    # DHT (C4), JPG (C8) and DAC (CC) sit in the SOF range but are not frame headers: their
    # bytes, read as one, would claim 2x1.
    decoy = sof(2, 1)
    hand = jpeg_segments((0xE0, b"JFIF\0" + bytes(9)), (0xC4, decoy), (0xC8, decoy),
                         (0xCC, decoy), (0xC2, sof(500, 300)))
    assert encoded_size(hand) == (500, 300)
    assert encoded_size(b"\xff\xd8\xff\xff" + hand[2:]) == (500, 300)  # a fill byte
    assert encoded_size(jpeg_segments((0xDA, bytes(8)), (0xC0, sof(9, 9)))) is None
    assert encoded_size(b"not an image") is None
    assert encoded_size(hand[:20]) is None  # cut before the frame header


# T.81 table B.1: SOF0-3, SOF5-7 (differential), SOF9-11 and SOF13-15 (arithmetic coding).
@pytest.mark.parametrize("marker", [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA,
                                    0xCB, 0xCD, 0xCE, 0xCF], ids=hex)
def test_every_start_of_frame_marker_gives_its_claim(marker):  # libjpeg reads them all
    hand = jpeg_segments((0xE0, b"JFIF\0" + bytes(9)), (marker, sof(20000, 15000)))
    assert encoded_size(hand) == (20000, 15000)


def test_encoded_size_skips_what_libjpeg_skips_and_bounds_the_walk():
    image = np.zeros((40, 90, 3), np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    sof_at = data.index(b"\xff\xc0")
    # libjpeg skips stray bytes before a marker (a warning only) and decodes the frame:
    # the claim must be read past them, or a big frame would pass unchecked.
    for junk in (b"\x00", b"\x12\x34\xff\x00", b"\xff" * 1000):
        odd = data[:sof_at] + junk + data[sof_at:]
        decoded = cv2.imdecode(np.frombuffer(odd, np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded.shape[:2] == (40, 90)
        assert encoded_size(odd) == (90, 40)
    # A header of thousands of empty segments is refused, not walked byte by byte.
    padded = data[:2] + b"\xff\xfe\x00\x02" * 5000 + data[2:]
    with pytest.raises(ImageFileError, match="more than 1000 segments"):
        encoded_size(padded)
    msg = types.SimpleNamespace(format="jpeg", data=padded)
    with pytest.raises(image_codec.ImageCodecError, match="more than 1000 segments"):
        image_codec.compressed_to_array(msg, "rgb")


@pytest.mark.parametrize("params", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]],
                         ids=["baseline", "progressive"])
def test_encoded_size_agrees_with_what_opencv_decodes(params):
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    for suffix in (".jpg", ".png"):
        data = cv2.imencode(suffix, image, params if suffix == ".jpg" else [])[1]
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        assert encoded_size(data) == (decoded.shape[1], decoded.shape[0])


# -- image files OpenCV refuses with an error ---------------------------------------------
@pytest.fixture
def bomb(tmp_path) -> Path:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(60000, 60000))
    return path


def test_read_image_names_the_file_opencv_raises_on(bomb):
    with pytest.raises(cv2.error):  # why read_image must catch: OpenCV raises for this file
        cv2.imdecode(np.fromfile(bomb, np.uint8), cv2.IMREAD_COLOR)
    with pytest.raises(ImageFileError) as caught:
        read_image(bomb)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{bomb}: cannot decode: claims 60000x60000 pixels")
    with pytest.raises(DatasetError, match="claims 60000x60000"):
        camvid_image(bomb)
    with pytest.raises(DatasetError, match="claims 60000x60000"):
        read_label(bomb)


def test_benchmark_and_calibration_images_opencv_refuses_are_named(bomb):
    from canet_ros.benchmark.frames import load_frame
    from canet_ros.inference.calibration import CalibrationSource
    from canet_ros.inference.results import EngineError

    with pytest.raises(ValueError, match=f"^--image {bomb}: cannot decode: claims 60000x"):
        load_frame(str(bomb), (64, 48))
    with pytest.raises(EngineError, match=f"^calibration image {bomb}: cannot decode: claims"):
        CalibrationSource._read(bomb)


def own_dataset(root: Path, which: str, data: bytes) -> Path:
    """Write a 2-class dataset folder of 6 frames, ``which``/f1.png replaced by ``data``."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    (root / "classes.yaml").write_text("names: [background, road]\n"
                                       "colors: [[0, 0, 0], [128, 64, 128]]\n"
                                       "ignore_index: 255\nsplit: {val_every: 2}\n")
    for i in range(6):
        cv2.imwrite(str(root / "images" / f"f{i}.png"), np.zeros((6, 8, 3), np.uint8))
        cv2.imwrite(str(root / "masks" / f"f{i}.png"), np.ones((6, 8), np.uint8))
    (root / which / "f1.png").write_bytes(data)
    return root


@pytest.mark.parametrize("which", ["images", "masks"])
def test_dataset_check_lists_a_file_opencv_refuses(tmp_path, which):
    root = own_dataset(tmp_path / "ds", which, png_claiming(60000, 60000))
    with pytest.raises(DatasetProblems) as caught:
        check_dataset(root)
    bad = root / which / "f1.png"
    assert [p for p in caught.value.problems if str(bad) in p] == [
        f"{bad}: cannot decode: claims 60000x60000 pixels, more than OpenCV decodes "
        f"(CV_IO_MAX_IMAGE_PIXELS, 2^30 by default)"]
    dataset = FolderDataset(root, "all")
    with pytest.raises(DatasetError, match=f"{bad}: cannot decode"):
        dataset.load(dataset.pairs.index(next(p for p in dataset.pairs if bad in p)))


def cvat_zip(path: Path, mask: bytes, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("labelmap.txt", "background:0,0,0::\nroad:128,64,128::\n")
        zf.writestr("ImageSets/Segmentation/default.txt", "f0\n")
        zf.writestr("SegmentationClass/f0.png", mask)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def into_folder(tmp_path: Path, image: bytes | None = None) -> Path:
    into = tmp_path / "into"
    (into / "images").mkdir(parents=True)
    cv2.imwrite(str(into / "images" / "f0.png"), np.zeros((6, 8, 3), np.uint8))
    if image is not None:
        (into / "images" / "f0.png").write_bytes(image)
    return into


def colour_mask() -> bytes:
    return cv2.imencode(".png", np.zeros((6, 8, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize("which", ["mask", "image"])
def test_import_cvat_names_a_file_opencv_refuses(tmp_path, capsys, which):
    bomb = png_claiming(60000, 60000)
    export = cvat_zip(tmp_path / "export.zip", bomb if which == "mask" else colour_mask())
    into = into_folder(tmp_path, bomb if which == "image" else None)
    assert main(["dataset", "import-cvat", str(export), "--into", str(into)]) == 1
    err = capsys.readouterr().err
    bad = f"{export}:SegmentationClass/f0.png" if which == "mask" else into / "images/f0.png"
    assert "Traceback" not in err and f"{bad}: cannot decode: claims 60000x60000" in err
    assert not (into / "masks").exists()


# -- compressed images claiming too many pixels -------------------------------------------
def compressed(data: bytes, fmt: str = "png", i: int = 0):
    return HUMBLE.types["sensor_msgs/msg/CompressedImage"](
        header=header(HUMBLE, i), format=fmt, data=np.frombuffer(data, np.uint8))


def test_a_compressed_image_over_the_pixel_limit_is_refused_undecoded():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "image_codec.md").read_text()
    assert image_codec.MAX_PIXELS == 2 ** 26 and "`image_codec.MAX_PIXELS` = 2^26" in doc
    small = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    at = small.index(b"\xff\xc0") + 5  # SOF0's Y and X
    jpeg = small[:at] + struct.pack(">HH", 8200, 8200) + small[at + 4:]
    cases = [(png_claiming(10000, 10000), "png", "10000x10000"),
             (jpeg, "bgr8; jpeg compressed bgr8", "8200x8200"),  # 67.24 MP, just over
             (bytes(12) + png_claiming(8193, 8192), "16UC1; compressedDepth png", "8193x8192")]
    for data, fmt, claim in cases:
        with pytest.raises(image_codec.ImageCodecError) as caught:
            image_codec.compressed_to_array(compressed(data, fmt))
        assert f"claims {claim} pixels, over the limit of {2 ** 26}" in str(caught.value)
    # exactly at the limit is left to OpenCV, which finds the data missing
    with pytest.raises(image_codec.ImageCodecError, match="cannot decode compressed bytes"):
        image_codec.compressed_to_array(compressed(png_claiming(8192, 8192)))


# -- segment-bag ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def test_segment_bag_skips_a_frame_over_the_limit_and_goes_on(engine, tmp_path):
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(3)]
    msgs[1] = Msg(CAM, receive_ns(1), compressed(png_claiming(20000, 20000), i=1))
    report = segment_bag(engine, SegmentOptions(write_bag(tmp_path / "in", msgs),
                                                tmp_path / "out"))
    assert report["error"] is None and report["frames"] == 2
    assert report["skipped"]["count"] == 1
    [reason] = report["skipped"]["reasons"]
    assert "claims 20000x20000 pixels, over the limit" in reason


def test_ground_truth_file_opencv_refuses_is_unusable_not_a_bad_bag(engine, tmp_path, bomb):
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(3)]
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for i in range(3):
        cv2.imwrite(str(gt_dir / f"{i}.png"), labels_for(i))
    (gt_dir / "1.png").write_bytes(bomb.read_bytes())
    report = segment_bag(engine, SegmentOptions(write_bag(tmp_path / "in", msgs),
                                                tmp_path / "out", gt_dir=gt_dir))
    assert report["error"] is None and report["frames"] == 3
    gt = report["ground_truth"]
    assert gt["frames_with_gt"] == 2
    assert gt["frames_gt_unusable"] == {
        f"{gt_dir / '1.png'}: cannot decode: claims 60000x60000 pixels, more than OpenCV "
        f"decodes (CV_IO_MAX_IMAGE_PIXELS, 2^30 by default)": 1}


def test_out_of_memory_on_one_frame_or_mask_is_that_frame_not_the_bag(engine, tmp_path,
                                                                      monkeypatch):
    from canet_ros import image_files
    from canet_ros.bag import pipeline

    def fail_on_second(real):
        calls = []

        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise MemoryError
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(pipeline, "to_frame", fail_on_second(pipeline.to_frame))
    monkeypatch.setattr(image_files, "read_image", fail_on_second(image_files.read_image))
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(4)]
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for i in range(4):
        cv2.imwrite(str(gt_dir / f"{i}.png"), labels_for(i))
    report = segment_bag(engine, SegmentOptions(write_bag(tmp_path / "in", msgs),
                                                tmp_path / "out", gt_dir=gt_dir))
    assert report["error"] is None and report["frames"] == 3
    assert report["skipped"]["reasons"] == {
        "cannot decode: not enough memory for the image": 1}
    # frame 1 was skipped, so the second ground truth read is frame 2's
    assert report["ground_truth"]["frames_gt_unusable"] == {
        f"{gt_dir / '2.png'}: not enough memory to decode it": 1}


# -- megabyte strings in messages -----------------------------------------------------------
def test_codec_messages_quote_a_huge_encoding_or_format_shortened():
    msg = raw_image(HUMBLE, 0)
    msg.encoding = "x" * 1_000_000
    with pytest.raises(image_codec.ImageCodecError) as caught:
        image_codec.image_to_array(msg, "rgb")
    assert "unsupported image encoding 'xxx" in str(caught.value)
    assert len(str(caught.value)) < 1000
    with pytest.raises(image_codec.ImageCodecError) as caught:
        image_codec.compressed_to_array(compressed(b"not an image", "y" * 1_000_000))
    assert "neither JPEG nor PNG" in str(caught.value) and len(str(caught.value)) < 1000


@pytest.mark.parametrize("length", [1500, 1_000_000])
def test_report_reasons_from_unshortened_sources_keep_their_ends(length):
    # A deserialisation error or a ground-truth path is quoted whole by its source.
    from canet_ros.bag.report import RunStats
    head, tail = "cannot deserialise: /gt/", "/0001.png: cannot decode"
    reason = head + "d" * (length - len(head) - len(tail)) + tail
    stats = RunStats(frames_total=2)
    stats.skip(0, 10, reason)
    stats.gt_frame_problem(1, 20, reason)
    for kept in (*stats.skipped, *stats.gt_unusable, stats.skipped_examples[0]["reason"],
                 stats.gt_frames[0]["reason"]):
        assert len(kept) <= 1000 and kept.startswith(head) and kept.endswith(tail)
        start, rest = kept.split(" ... (")
        left_out, end = rest.split(" characters left out) ... ")
        assert len(start) + int(left_out) + len(end) == length


def test_a_bag_of_huge_distinct_encodings_gives_a_small_report(engine, tmp_path):
    msgs = []
    for i in range(30):  # 100 KB each: 3 MB of strings, each distinct in its first bytes
        msg = raw_image(HUMBLE, i)
        msg.encoding = f"{i:03d}" + "x" * 100_000
        msgs.append(Msg("/cam/image_raw", receive_ns(i), msg))
    msgs.append(Msg("/cam/image_raw", receive_ns(31), raw_image(HUMBLE, 31)))
    report = segment_bag(engine, SegmentOptions(write_bag(tmp_path / "in", msgs),
                                                tmp_path / "out"))
    assert report["frames"] == 1 and report["skipped"]["count"] == 30
    out = Path(report["output_bag"]).parent
    assert (out / "report.json").stat().st_size < 100_000
    assert (out / "report.md").stat().st_size < 100_000
    reasons = json.loads((out / "report.json").read_text())["skipped"]["reasons"]
    assert any("'000xxx" in r for r in reasons)  # still says which encoding


# -- zips whose members the import does not read -------------------------------------------
def test_import_cvat_unpacks_only_what_it_reads(tmp_path, monkeypatch):
    unpacked = []
    extract = zipfile.ZipFile.extract

    def spy(self, member, path=None, pwd=None):
        unpacked.append(getattr(member, "filename", member))
        return extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", spy)
    export = cvat_zip(tmp_path / "export.zip", colour_mask(),
                      {"notes.bin": bytes(1000), "SegmentationObject/f0.png": colour_mask(),
                       "task/JPEGImages/f0.jpg": b"x"})
    into = into_folder(tmp_path)
    assert import_cvat(export, into)["masks"] == 1
    assert sorted(unpacked) == ["ImageSets/Segmentation/default.txt",
                                "SegmentationClass/f0.png", "labelmap.txt"]


def test_import_cvat_refuses_a_member_declaring_an_absurd_size(tmp_path):
    export = cvat_zip(tmp_path / "export.zip", colour_mask())
    data = bytearray(export.read_bytes())
    # The mask's central header (its name, last in the file, follows 46 bytes of it): its
    # uncompressed size (APPNOTE 4.3.12, byte 24) set to 300 MiB, as a zip bomb declares it.
    at = data.rfind(b"SegmentationClass/f0.png") - 46
    assert data[at:at + 4] == b"PK\x01\x02"
    struct.pack_into("<I", data, at + 24, 300 << 20)
    export.write_bytes(bytes(data))
    into = into_folder(tmp_path)
    with pytest.raises(DatasetError) as caught:
        import_cvat(export, into)
    assert str(caught.value).startswith(f"{export}:SegmentationClass/f0.png: {300 << 20} "
                                        f"bytes unpacked, more than the 256 MiB")
    assert cvat_import.MAX_MEMBER_BYTES == 256 << 20
    assert not (into / "masks").exists()

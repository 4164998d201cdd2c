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

"""Read and write image files without handing OpenCV a path.

``cv2.imread``/``cv2.imwrite`` take the path as a ``str`` and encode it as UTF-8. Linux
allows any bytes in a file name, and Python holds a byte that is not UTF-8 as a lone
surrogate (``os.fsdecode`` turns byte 0xFF into U+DCFF); OpenCV 5.1 crashes the whole
process on such a string (SIGSEGV, no message, everything unwritten lost). Python opens the
file here, with the name's original bytes, and OpenCV only sees the bytes in memory.

The results match ``cv2.imread``/``cv2.imwrite`` for every readable path: ``cv2.imdecode``
applies a JPEG's EXIF orientation as ``cv2.imread`` does, and ``cv2.imencode`` produces the
same bytes ``cv2.imwrite`` puts in the file (test/test_image_files.py compares them).
Where ``cv2.imread`` raises ``cv2.error`` (a file claiming more pixels than OpenCV's
``CV_IO_MAX_IMAGE_PIXELS``, some malformed headers), ``read_image`` raises
``ImageFileError`` naming the file and OpenCV's reason, so callers handle it as a bad file.

``encoded_size`` reads the width and height a PNG or JPEG claims from its header, without
decoding it: image_codec refuses a message claiming too many pixels with it.

``read_label_image`` reads a PNG of class ids (a dataset's masks/, segment-bag's --gt-dir)
as the values it stores, which for palette and 1, 2 or 4-bit PNGs is not what OpenCV gives.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np

from .errors import CanetError

__all__ = ["ImageFileError", "decode_error_text", "encoded_size", "grey_channel", "read_image",
           "read_label_image", "save_image", "write_image"]

PathLike = Union[str, "os.PathLike[str]"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_GREY = 0  # PNG colour type of greyscale without alpha
_PNG_PALETTE = 3  # PNG colour type of indexed colour: each pixel an index into PLTE
# JPEG start-of-frame markers (ITU T.81 table B.1): 0xC0..0xCF but DHT, JPG and DAC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x01, 0xD8, *range(0xD0, 0xD8)])  # TEM, SOI, RSTn: no length
_JPEG_FILL = re.compile(rb"\xff+")
# Segments before the frame header: an encoder writes a handful (APPn, DQT, DHT, COM), a
# camera with EXIF, ICC and maker notes a few dozen.
_JPEG_MAX_SEGMENTS = 1000


class ImageFileError(CanetError, ValueError):
    """An image file OpenCV refuses with an error rather than None; the message names it."""


def encoded_size(data: np.ndarray | bytes) -> tuple[int, int] | None:
    """(width, height) a PNG's IHDR or a JPEG's start-of-frame claims; None if neither.

    Only the header is read, so a 48 KB file claiming 20000x20000 pixels costs nothing.
    None also for a JPEG whose frame header is missing, cut or after the scan data.
    """
    flat = (np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray))
            else np.ascontiguousarray(data, np.uint8).reshape(-1))
    view = memoryview(flat)
    if view[:8].tobytes() == _PNG_MAGIC:
        if len(view) < 24 or view[12:16].tobytes() != b"IHDR":
            return None
        return (int.from_bytes(view[16:20], "big"), int.from_bytes(view[20:24], "big"))
    if view[:2].tobytes() != b"\xff\xd8":
        return None
    return _jpeg_size(flat.tobytes())


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk a JPEG's segments to its frame header as libjpeg does (next_marker).

    libjpeg skips stray bytes before a marker (with a warning) and FF fill bytes, so this
    does too, with bytes.find and a regex rather than a Python loop per byte. More than
    _JPEG_MAX_SEGMENTS segments before the frame header is refused (ImageFileError): no
    encoder writes that many, and walking them would cost more than decoding.
    """
    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        pos = data.find(b"\xff", pos)
        if pos < 0:
            return None
        pos = _JPEG_FILL.match(data, pos).end()  # past the FF run; the marker follows
        if pos + 2 > len(data):
            return None
        marker = data[pos]
        if marker == 0x00:  # a stuffed FF00 is data, not a marker
            pos += 1
        elif marker in _JPEG_STANDALONE:
            pos += 1
        elif marker == 0xDA:  # start of scan before any frame header
            return None
        elif marker in _JPEG_SOF:
            if pos + 8 > len(data):
                return None
            return (int.from_bytes(data[pos + 6:pos + 8], "big"),
                    int.from_bytes(data[pos + 4:pos + 6], "big"))
        else:
            pos += 1 + int.from_bytes(data[pos + 1:pos + 3], "big")
    raise ImageFileError(f"JPEG header: more than {_JPEG_MAX_SEGMENTS} segments before its "
                         f"frame header")


def read_image(path: PathLike, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """Decode the image file at ``path`` as ``cv2.imread(path, flags)`` would.

    None where ``cv2.imread`` gives None: the file is missing, unreadable (a folder, no
    permission), empty, or not an image OpenCV can decode. ``ImageFileError`` where
    ``cv2.imread`` raises: too many pixels for OpenCV, or a header OpenCV rejects.
    """
    try:
        data = np.fromfile(os.fspath(path), np.uint8)
    except OSError:  # missing, a folder, no permission: cv2.imread says None, so do we
        return None
    if data.size == 0:  # cv2.imdecode raises on an empty buffer; cv2.imread says None
        return None
    try:
        return cv2.imdecode(data, flags)
    except cv2.error as exc:
        raise ImageFileError(f"{os.fspath(path)}: {decode_error_text(data, exc)}") from None


def _png_header(path: PathLike) -> tuple[int, int] | None:
    """Return a PNG's (bit depth, colour type), or None for anything else."""
    try:
        with open(os.fspath(path), "rb") as f:
            head = f.read(26)
    except OSError:
        return None  # the decoder that follows names the file
    # IHDR is always the first chunk: bit depth at byte 24, colour type at byte 25.
    if len(head) < 26 or not head.startswith(_PNG_MAGIC) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _palette_indices(path: PathLike) -> np.ndarray | None:
    """Return the pixel indices of a palette PNG (OpenCV gives only the colours they stand for).

    None where Pillow cannot decode it, as ``read_image`` says of a file OpenCV cannot.
    """
    from PIL import Image  # pillow comes with matplotlib; only palette label PNGs need it

    try:
        with Image.open(os.fspath(path)) as image:  # colour type 3 opens as mode "P"
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def read_label_image(path: PathLike) -> np.ndarray | None:
    """Decode a PNG of class ids to the values it stores; None and errors as ``read_image``.

    A palette PNG gives its indices, as Pascal VOC's masks mean them (OpenCV gives their
    colours); a 1, 2 or 4-bit greyscale PNG its own numbers (OpenCV scales them to 0-255:
    1-bit 0/1 to 0/255, 2-bit by 85, 4-bit by 17). Anything else is read unchanged: 8 or
    16 bits, with its channels (``grey_channel`` makes one).
    """
    header = _png_header(path)
    if header is not None and header[1] == _PNG_PALETTE:
        return _palette_indices(path)
    image = read_image(path, cv2.IMREAD_UNCHANGED)
    if (image is None or image.ndim != 2 or header is None or header[1] != _PNG_GREY
            or header[0] not in (1, 2, 4)):
        return image
    return (image // (255 // ((1 << header[0]) - 1))).astype(np.uint8)


def grey_channel(image: np.ndarray) -> np.ndarray | None:
    """Return the one channel of a grey image; None where its colour channels differ.

    OpenCV reads a grey+alpha PNG as BGRA with B = G = R; the alpha (where a label tool
    painted) holds no ids, so only the colour channels are compared.
    """
    if image.ndim == 2:
        return image
    if not (image[..., :1] == image[..., : min(3, image.shape[2])]).all():
        return None
    return image[..., 0]


def decode_error_text(data: np.ndarray, exc: cv2.error) -> str:
    """Why ``cv2.imdecode`` raised on ``data``: OpenCV's reason, or the size it refused."""
    reason = " ".join(str(exc.err or exc.msg or exc).split()) or "unknown error"
    if "CV_IO_MAX_IMAGE_PIXELS" not in reason:
        return f"cannot decode ({reason})"
    try:
        size = encoded_size(data)
    except ImageFileError:
        size = None
    claim = f"claims {size[0]}x{size[1]} pixels," if size else "has"
    return (f"cannot decode: {claim} more than OpenCV decodes (CV_IO_MAX_IMAGE_PIXELS, "
            f"2^30 by default)")


def write_image(path: PathLike, image: np.ndarray, params: Sequence[int] = ()) -> bool:
    """Encode ``image`` by the suffix of ``path`` and write it, as ``cv2.imwrite`` would.

    False where ``cv2.imwrite`` gives False: the folder is missing or not writable, the path
    is a folder, the disk is full. An unknown suffix or an image the format cannot hold
    raises ``cv2.error``, as ``cv2.imwrite`` does.
    """
    try:
        save_image(path, image, params)
    except OSError:
        return False
    return True


def save_image(path: PathLike, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """``write_image``, raising where it gives False, so that the caller can say why.

    The ``OSError`` carries the errno and the path (a full disk is ``ENOSPC``, not just
    "cannot write"); a file cut short by it is left for the caller to remove.
    """
    ok, encoded = cv2.imencode(Path(path).suffix, image, list(params))
    if not ok:
        raise OSError(f"{os.fspath(path)}: OpenCV cannot encode this image")
    name = os.fspath(path)
    try:  # Python's file object, not ndarray.tofile, whose errors lose the errno
        with open(name, "wb") as out:
            out.write(memoryview(encoded))
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, name) from None  # a write error has no name

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


"""A JPEG without its end-of-image marker is refused, even where OpenCV would decode it.

OpenCV's leniency differs between versions: some decode a cut-off JPEG partially (grey
below the cut), this one decodes a JPEG whose last bytes are missing when the scan data is
complete. Either way the data was cut short, and the codec must say so rather than pass
the image on.
"""
import struct
import types

import cv2
import numpy as np
import pytest

from canet_ros.image_codec import ImageCodecError, compressed_to_array

EOI = b"\xff\xd9"


def exif_thumbnail_segment() -> bytes:
    """Return an APP1 (EXIF) segment holding a thumbnail JPEG, whose own FF D9 sits inside."""
    thumbnail = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()
    payload = b"Exif\x00\x00" + thumbnail
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def gradient_jpeg(h: int, w: int, segment: bytes = b"") -> bytes:
    """Return a real JPEG of a colour gradient, with ``segment`` inserted right after SOI."""
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.dstack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (h + w)])
    ok, encoded = cv2.imencode(".jpg", image.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = encoded.tobytes()
    assert ok and data.endswith(EOI) and data.count(EOI) == 1
    return data[:2] + segment + data[2:]


def truncated_jpeg_opencv_decodes(segment: bytes = b"") -> bytes:
    """Return a real JPEG cut short (no end-of-image marker) that cv2.imdecode still decodes.

    ``segment`` (after SOI) stays whole: only the image's own end is cut off.
    """
    for h, w in ((48, 64), (96, 128), (120, 160)):
        data = gradient_jpeg(h, w, segment)
        for n in (len(data) - 2, len(data) - 1, len(data) * 3 // 4, len(data) // 2):
            cut = data[:n]
            decoded = cv2.imdecode(np.frombuffer(cut, np.uint8), cv2.IMREAD_UNCHANGED)
            if decoded is not None and decoded.shape[:2] == (h, w) and n > len(segment) + 2:
                return cut
    reason = f"OpenCV {cv2.__version__} decodes none of the cut-off JPEGs tried"
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def test_truncated_jpeg_is_refused_even_when_opencv_decodes_it():
    cut = truncated_jpeg_opencv_decodes()
    assert EOI not in cut
    for fmt in ("jpeg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed rgb8"):
        msg = types.SimpleNamespace(format=fmt, data=cut)
        with pytest.raises(ImageCodecError, match="truncated JPEG"):
            compressed_to_array(msg)
        with pytest.raises(ImageCodecError, match="truncated JPEG"):
            compressed_to_array(msg, None)


def test_truncated_jpeg_with_an_exif_thumbnail_is_refused():
    # The thumbnail's end-of-image marker is in the data; the image's own is not.
    cut = truncated_jpeg_opencv_decodes(exif_thumbnail_segment())
    assert EOI in cut and not cut.endswith(EOI)
    for fmt in ("jpeg", "bgr8; jpeg compressed bgr8"):
        with pytest.raises(ImageCodecError, match="truncated JPEG"):
            compressed_to_array(types.SimpleNamespace(format=fmt, data=cut))


@pytest.mark.parametrize("padding", [b"", b"\x00" * 13, b"\xff" * 4, b"\x00\xff\x00"])
def test_whole_jpeg_with_a_thumbnail_and_trailing_padding_decodes(padding):
    # Some encoders pad the buffer after the end-of-image marker; the pixels are the same.
    expected = cv2.imdecode(np.frombuffer(gradient_jpeg(48, 64), np.uint8), cv2.IMREAD_COLOR)
    data = gradient_jpeg(48, 64, exif_thumbnail_segment()) + padding
    out = compressed_to_array(types.SimpleNamespace(format="jpeg", data=data), "bgr")
    np.testing.assert_array_equal(out, expected)

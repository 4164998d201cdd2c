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

"""Tests for canet_ros.image_codec: CompressedImage decoding, Image encoding, bad payloads.

Every expectation is built by hand, not by the codec.
"""

import array
import types

import cv2
import numpy as np
import pytest

from canet_ros.image_codec import (
    ImageCodecError,
    array_to_image_fields,
    compressed_to_array,
    fill_image,
    image_buffer,
    to_frame,
)

RNG = np.random.default_rng(1234)


def compressed_msg(fmt: str, payload: bytes):
    return types.SimpleNamespace(header="hdr", format=fmt, data=np.frombuffer(payload, np.uint8))


def blocky_rgb() -> np.ndarray:
    """32x48 RGB image of flat 16x16 blocks (one JPEG MCU each): JPEG keeps them nearly exact."""
    palette = np.array([[220, 30, 30], [30, 200, 40], [20, 40, 210], [240, 240, 60]], np.uint8)
    blocks = np.arange(6).reshape(2, 3) % 4
    return np.kron(palette[blocks], np.ones((16, 16, 1), np.uint8)).astype(np.uint8)


def encoded(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


PNG_FORMATS = ["png", "bgr8; png compressed bgr8", "rgb8; png compressed bgr8",
               "bgra8; png compressed bgra8"]
JPEG_FORMATS = ["jpeg", "jpg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8"]


@pytest.mark.parametrize("fmt", PNG_FORMATS)
def test_png_colour_is_exact(fmt):
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = compressed_msg(fmt, encoded(".png", rgb[..., ::-1]))  # encoder takes BGR
    np.testing.assert_array_equal(compressed_to_array(msg, "rgb"), rgb)
    np.testing.assert_array_equal(compressed_to_array(msg), rgb[..., ::-1])
    np.testing.assert_array_equal(to_frame(msg), rgb)


@pytest.mark.parametrize("fmt", JPEG_FORMATS)
def test_jpeg_colour_within_tolerance(fmt):
    rgb = blocky_rgb()
    msg = compressed_msg(fmt, encoded(".jpg", rgb[..., ::-1]))
    for order, want in (("rgb", rgb), ("bgr", rgb[..., ::-1])):
        got = compressed_to_array(msg, order)
        assert got.shape == rgb.shape and got.dtype == np.uint8
        # chroma upsampling blurs block edges, so compare the blocks' interiors only
        inner = (slice(None), slice(2, 14), slice(None), slice(2, 14), slice(None))
        diff = (got.astype(int) - want.astype(int)).reshape(2, 16, 3, 16, 3)[inner]
        assert np.abs(diff).max() <= 6


def test_rgb_payload_marker_is_honoured():
    rgb = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    # the publisher handed RGB bytes straight to the encoder and said so
    msg = compressed_msg("rgb8; png compressed rgb8", encoded(".png", rgb))
    np.testing.assert_array_equal(compressed_to_array(msg, "rgb"), rgb)
    np.testing.assert_array_equal(compressed_to_array(msg, "bgr"), rgb[..., ::-1])


@pytest.mark.parametrize("fmt", ["rgb8; png compressed ", "bgr8; png", "rgba8; jpeg compressed",
                                 "bgr16; png compressed rgb16"])
def test_a_colour_source_without_compressed_bgr_has_an_rgb_payload(fmt):
    # image_transport's compressed subscriber: for a colour source encoding it reverses
    # the decoded buffer only when the string says "compressed bgr"; else it is RGB.
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    ext = ".jpg" if "jpeg" in fmt else ".png"
    image = blocky_rgb() if ext == ".jpg" else rgb
    msg = compressed_msg(fmt, encoded(ext, image))  # RGB bytes handed to the encoder
    got = compressed_to_array(msg, "rgb")
    if ext == ".png":
        np.testing.assert_array_equal(got, image)
    else:  # JPEG blurs block edges: the blocks' interiors
        inner = (slice(None), slice(2, 14), slice(None), slice(2, 14), slice(None))
        diff = (got.astype(int) - image.astype(int)).reshape(2, 16, 3, 16, 3)[inner]
        assert np.abs(diff).max() <= 6


def twelve_bit(shape: tuple) -> np.ndarray:
    """16-bit samples as a 12-bit camera writes them (<< 4), low bits noise: bytes differ."""
    high = RNG.integers(0, 4096, shape).astype(np.uint16) << 4
    return high | RNG.integers(0, 16, shape).astype(np.uint16)


@pytest.mark.parametrize("fmt, payload_is_rgb", [("rgb16; png compressed ", True),
                                                 ("rgba16; png compressed ", True),
                                                 ("bgr16; png compressed bgr16", False),
                                                 ("bgra16; png compressed bgra16", False)])
def test_a_sixteen_bit_colour_png_has_the_order_its_string_gives(fmt, payload_is_rgb):
    # 16-bit colour encodings are colour sources as the 8-bit ones are (isColor).
    rgb = twelve_bit((4, 6, 3))
    stored = rgb if payload_is_rgb else rgb[..., ::-1]
    if "a16" in fmt:
        stored = np.dstack([stored, np.full((4, 6), 65535, np.uint16)])
    msg = compressed_msg(fmt, encoded(".png", stored))
    np.testing.assert_array_equal(compressed_to_array(msg, None), stored)
    eight = (rgb >> 8).astype(np.uint8)  # the high byte, as the module's docstring says
    np.testing.assert_array_equal(compressed_to_array(msg, "rgb"), eight)
    np.testing.assert_array_equal(compressed_to_array(msg, "bgr"), eight[..., ::-1])


def test_a_sixteen_bit_bayer_png_is_demosaiced_from_its_high_bytes():
    mosaic = twelve_bit((8, 10))
    msg = compressed_msg("bayer_rggb16; png compressed ", encoded(".png", mosaic))
    got = compressed_to_array(msg, "rgb")
    want = cv2.cvtColor((mosaic >> 8).astype(np.uint8), cv2.COLOR_BayerBG2RGB)
    np.testing.assert_array_equal(got, want)
    # Demosaicing all 16 bits and keeping the high byte differs by rounding only.
    wide = cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2RGB) >> 8
    assert np.abs(got.astype(int) - wide).max() <= 1


def test_a_bayer_png_asked_for_as_mono_is_the_grey_of_its_colours():
    mosaic = RNG.integers(0, 256, (8, 10), dtype=np.uint8)
    msg = compressed_msg("bayer_rggb8; png compressed ", encoded(".png", mosaic))
    got = compressed_to_array(msg, "mono")
    colour = cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2BGR)
    np.testing.assert_array_equal(got, cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
    # cv_bridge converts bayer to mono8 in one step (BayerBG2GRAY): the same within rounding.
    assert np.abs(got.astype(int) - cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2GRAY)).max() <= 1


@pytest.mark.parametrize("pattern, code", [("bayer_rggb8", cv2.COLOR_BayerBG2RGB),
                                           ("bayer_bggr8", cv2.COLOR_BayerRG2RGB),
                                           ("bayer_gbrg8", cv2.COLOR_BayerGR2RGB),
                                           ("bayer_grbg8", cv2.COLOR_BayerGB2RGB)])
def test_a_bayer_png_is_demosaiced_as_its_raw_image_is(pattern, code):
    # compressed_image_transport stores a bayer frame's raw mosaic in the PNG and names
    # the pattern; cv_bridge demosaics it with OpenCV's code for that ROS pattern.
    mosaic = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    msg = compressed_msg(f"{pattern}; png compressed ", encoded(".png", mosaic))
    want = cv2.cvtColor(mosaic, code)
    np.testing.assert_array_equal(compressed_to_array(msg, "rgb"), want)
    np.testing.assert_array_equal(to_frame(msg, "bgr"), want[..., ::-1])
    np.testing.assert_array_equal(compressed_to_array(msg, None), mosaic)  # as stored
    # A uniform colour's mosaic comes back as that colour (R at ROS rggb's (0, 0)).
    flat = np.empty((6, 8), np.uint8)
    flat[0::2, 0::2], flat[1::2, 1::2], flat[0::2, 1::2], flat[1::2, 0::2] = 200, 50, 100, 100
    if pattern == "bayer_rggb8":
        got = compressed_to_array(compressed_msg(f"{pattern}; png compressed ",
                                                 encoded(".png", flat)), "rgb")
        assert got[2:4, 2:6].tolist() == [[[200, 100, 50]] * 4] * 2
    wide = compressed_msg("bayer_rggb16; png compressed ",
                          encoded(".png", mosaic.astype(np.uint16) * 257))
    np.testing.assert_array_equal(compressed_to_array(wide, "rgb"),
                                  cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2RGB))


def test_magic_bytes_win_over_format_string():
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        compressed_to_array(compressed_msg("jpeg", encoded(".png", rgb[..., ::-1])), "rgb"), rgb
    )
    jpeg = compressed_msg("png", encoded(".jpg", blocky_rgb()[..., ::-1]))
    assert compressed_to_array(jpeg, "rgb").shape == (32, 48, 3)


def test_mono_png_native_and_colour():
    grey = RNG.integers(0, 256, (5, 9), dtype=np.uint8)
    msg = compressed_msg("mono8; png compressed mono8", encoded(".png", grey))
    for order in (None, "mono"):
        got = compressed_to_array(msg, order)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, grey)
    np.testing.assert_array_equal(compressed_to_array(msg, "rgb"), np.dstack([grey] * 3))


@pytest.mark.parametrize("fmt", ["16UC1; png compressed", "mono16; png compressed mono16", "png"])
def test_sixteen_bit_png_keeps_uint16(fmt):
    depth = RNG.integers(0, 65536, (4, 5), dtype=np.uint16)
    msg = compressed_msg(fmt, encoded(".png", depth))
    for order in (None, "mono"):
        got = compressed_to_array(msg, order)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, depth)
    hi = (depth // 256).astype(np.uint8)
    np.testing.assert_array_equal(compressed_to_array(msg, "bgr"), np.dstack([hi] * 3))


def test_compressed_depth_header_is_skipped():
    depth = RNG.integers(0, 65536, (4, 5), dtype=np.uint16)
    payload = bytes(12) + encoded(".png", depth)
    msg = compressed_msg("16UC1; compressedDepth png", payload)
    np.testing.assert_array_equal(compressed_to_array(msg, None), depth)
    with pytest.raises(ImageCodecError, match="32fc1"):
        compressed_to_array(compressed_msg("32FC1; compressedDepth png", payload), None)


def test_colour_png_to_mono_and_alpha_dropped():
    rgb = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    alpha = np.full((4, 4, 1), 77, np.uint8)
    msg = compressed_msg("bgra8; png compressed bgra8",
                         encoded(".png", np.dstack([rgb[..., ::-1], alpha])))
    assert compressed_to_array(msg, None).shape == (4, 4, 4)
    np.testing.assert_array_equal(compressed_to_array(msg, "rgb"), rgb)
    weights = np.array([0.299, 0.587, 0.114])
    want = np.rint(rgb.astype(float) @ weights)
    assert np.abs(compressed_to_array(msg, "mono").astype(int) - want).max() <= 1


def test_array_to_image_fields_bytes_are_hand_checked():
    mono16 = np.array([[0x0102, 0xA0B0], [0xFFFF, 0x0000]], np.uint16)
    fields = array_to_image_fields(mono16, "mono16", header="h")
    assert fields == {
        "header": "h", "height": 2, "width": 2, "encoding": "mono16", "is_bigendian": 0,
        "step": 4, "data": bytes([0x02, 0x01, 0xB0, 0xA0, 0xFF, 0xFF, 0x00, 0x00]),
    }  # fmt: skip
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    fields = array_to_image_fields(rgb[:, ::-1], "bgr8")  # non-contiguous input
    assert fields["step"] == 9 and fields["header"] is None
    assert fields["data"] == bytes([6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11])
    mono8 = np.array([[1, 2, 3]], np.uint8)
    assert array_to_image_fields(mono8, "mono8")["data"] == b"\x01\x02\x03"
    assert array_to_image_fields(np.zeros((1, 2, 3), np.uint8), "rgb8")["width"] == 2


def test_fill_image_uses_array_array_and_keeps_header():
    header = types.SimpleNamespace(frame_id="cam", stamp=5)
    msg = types.SimpleNamespace(header=None, data=[])
    pixels = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    fill_image(msg, pixels, "rgb8", header)
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    assert msg.data.tobytes() == bytes([1, 2, 3, 4, 5, 6])
    assert msg.header is header
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian) == (
        1, 2, 6, "rgb8", 0,
    )  # fmt: skip
    fill_image(msg, np.array([[9]], np.uint8), "mono8")
    assert msg.header is header and msg.data.tobytes() == b"\x09"


def test_fill_image_keeps_ndarray_data_for_rosbags_messages():
    msg = types.SimpleNamespace(header="h", data=np.zeros(0, np.uint8))
    pixels = np.array([[7, 8]], np.uint8)
    fill_image(msg, pixels, "mono8")
    assert isinstance(msg.data, np.ndarray) and msg.data.tolist() == [7, 8]
    assert not np.shares_memory(msg.data, pixels)


def test_image_buffer_lives_in_the_message_and_fill_image_keeps_it():
    msg = types.SimpleNamespace(header="h", data=[])
    view = image_buffer(msg, (2, 3, 3))
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    assert view.shape == (2, 3, 3) and view.dtype == np.uint8 and not view.any()
    view[:] = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    buffer = msg.data
    fill_image(msg, view, "bgr8")
    assert msg.data is buffer  # nothing copied, nothing replaced
    assert msg.data.tobytes() == bytes(range(18))
    assert (msg.height, msg.width, msg.step, msg.encoding) == (2, 3, 9, "bgr8")
    # The same size again: the same buffer, holding the last image until written.
    again = image_buffer(msg, (2, 3, 3))
    assert msg.data is buffer and again[1, 2, 2] == 17
    # Another array of that size is copied in, as before.
    other = np.full((2, 3, 3), 5, np.uint8)
    fill_image(msg, other, "rgb8")
    assert msg.data.tobytes() == bytes([5] * 18) and not np.shares_memory(other, again)
    # Another size: a new buffer; 16-bit labels view the same bytes, little-endian.
    wide = image_buffer(msg, (1, 2), np.uint16)
    assert msg.data is not buffer and len(msg.data) == 4
    wide[:] = [[258, 1]]
    fill_image(msg, wide, "mono16")
    assert msg.data.tobytes() == bytes([2, 1, 1, 0]) and msg.step == 4


def test_image_buffer_in_a_real_sensor_msgs_image():
    image_type = pytest.importorskip("sensor_msgs.msg").Image
    msg = image_type()
    view = image_buffer(msg, (4, 5))
    view[:] = 7
    buffer = msg.data
    fill_image(msg, view, "mono8")
    assert msg.data is buffer and msg.data.tobytes() == bytes([7] * 20)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (4, 5, 5, "mono8")


def test_bad_compressed_raise():
    png = encoded(".png", np.zeros((8, 8, 3), np.uint8))
    jpeg = encoded(".jpg", blocky_rgb())
    cases = [
        ("jpeg", b"", "empty"),
        ("bgr8; jpeg compressed bgr8", b"not an image at all", "neither JPEG nor PNG"),
        ("png", png[: len(png) // 2], "cannot decode"),
        ("jpeg", jpeg[: len(jpeg) // 2], "truncated JPEG"),
        ("jpeg", b"\xff\xd8\xff\xe0garbage\xff\xd9", "cannot decode"),
        ("16UC1; compressedDepth rvl", bytes(12) + b"RVL!" + bytes(8), "neither JPEG nor PNG"),
    ]
    for fmt, payload, fragment in cases:
        msg = types.SimpleNamespace(format=fmt, data=payload)
        with pytest.raises(ImageCodecError, match=fragment):
            compressed_to_array(msg)
    with pytest.raises(ImageCodecError, match="order"):
        compressed_to_array(compressed_msg("png", png), "yuv")


@pytest.mark.parametrize(
    ("array_in", "encoding", "fragment"),
    [
        (np.zeros((2, 2), np.uint16), "mono8", "HxW uint8"),
        (np.zeros((2, 2, 3), np.uint8), "mono8", "HxW uint8"),
        (np.zeros((2, 2), np.uint8), "mono16", "HxW uint16"),
        (np.zeros((2, 2), np.int16), "mono16", "HxW uint16"),
        (np.zeros((2, 2, 4), np.uint8), "rgb8", "HxWx3 uint8"),
        (np.zeros((2, 2, 3), np.float32), "bgr8", "HxWx3 uint8"),
        (np.zeros((0, 2), np.uint8), "mono8", "zero-size"),
        (np.zeros((2, 2), np.uint8), "yuv422", "cannot encode to 'yuv422'"),
        ([[1, 2]], "mono8", "needs a numpy array"),
    ],
)
def test_bad_arrays_raise(array_in, encoding, fragment):
    with pytest.raises(ImageCodecError, match=fragment):
        array_to_image_fields(array_in, encoding)
    with pytest.raises(ImageCodecError, match=fragment):
        fill_image(types.SimpleNamespace(), array_in, encoding)

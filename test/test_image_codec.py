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

"""Tests for canet_ros.image_codec decoding raw Image messages; expectations are built by hand."""

import array
import types

import numpy as np
import pytest

from canet_ros.image_codec import ImageCodecError, image_to_array, native_order, to_frame

RNG = np.random.default_rng(1234)
H, W = 6, 8


def image_msg(encoding: str, rows: np.ndarray, pad: int = 0, bigendian: int = 0, data_type=bytes):
    """Image-like message whose rows carry `pad` bytes of random garbage after the pixels."""
    step = rows.shape[1] + pad
    raw = RNG.integers(0, 256, (rows.shape[0], step), dtype=np.uint8)
    raw[:, : rows.shape[1]] = rows
    makers = {
        np.ndarray: lambda b: np.frombuffer(b, np.uint8).copy(),
        array.array: lambda b: array.array("B", b),
    }
    data = makers.get(data_type, data_type)(raw.tobytes())
    width = rows.shape[1] // BYTES_PER_PIXEL[encoding]
    return types.SimpleNamespace(
        header="hdr", height=rows.shape[0], width=width, encoding=encoding,
        is_bigendian=bigendian, step=step, data=data,
    )  # fmt: skip


BYTES_PER_PIXEL = {
    "mono8": 1, "8UC1": 1, "rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4,
    "mono16": 2, "16UC1": 2, "rgb16": 6, "bgr16": 6, "rgba16": 8, "bgra16": 8,
    "bayer_rggb8": 1, "bayer_bggr8": 1,
    "bayer_gbrg8": 1, "bayer_grbg8": 1, "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2,
}  # fmt: skip

EIGHT_BIT = {  # encoding -> channels in the native array (0 = plain HxW)
    "mono8": 0, "8UC1": 0, "rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4,
    "bayer_rggb8": 0, "bayer_bggr8": 0, "bayer_gbrg8": 0, "bayer_grbg8": 0,
    "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2,
}  # fmt: skip
PADS = [0, 1, 5, 16]


@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("encoding", sorted(EIGHT_BIT))
def test_eight_bit_native_round_trip(encoding, pad):
    channels = EIGHT_BIT[encoding]
    shape = (H, W, channels) if channels else (H, W)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    msg = image_msg(encoding, pixels.reshape(H, -1), pad)
    out = image_to_array(msg)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("pad", [0, 1, 5])
@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "rgb16", "bgr16"])
def test_sixteen_bit_native_round_trip(encoding, bigendian, pad):
    shape = (H, W, 3) if encoding in ("rgb16", "bgr16") else (H, W)
    pixels = RNG.integers(0, 65536, shape, dtype=np.uint16)
    wire = pixels.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(H, -1)
    out = image_to_array(image_msg(encoding, wire, pad, bigendian))
    assert out.dtype == np.dtype(np.uint16)  # native byte order whatever the wire said
    np.testing.assert_array_equal(out, pixels)


def test_big_endian_bytes_are_read_most_significant_first():
    rows = np.array([[0x12, 0x34, 0xAB, 0xCD]], np.uint8)
    out = image_to_array(image_msg("mono16", rows, pad=3, bigendian=1))
    assert out.tolist() == [[0x1234, 0xABCD]]


def test_colour_orders_for_eight_bit():
    px = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    r, g, b, a = (px[..., i] for i in range(4))
    rgb, bgr = np.dstack([r, g, b]), np.dstack([b, g, r])
    cases = [  # encoding, stored pixels, expected rgb, expected bgr
        ("rgb8", rgb, rgb, bgr),
        ("bgr8", bgr, rgb, bgr),
        ("8UC3", bgr, rgb, bgr),
        ("rgba8", np.dstack([r, g, b, a]), rgb, bgr),
        ("bgra8", np.dstack([b, g, r, a]), rgb, bgr),
        ("mono8", r, np.dstack([r, r, r]), np.dstack([r, r, r])),
        ("8UC1", g, np.dstack([g, g, g]), np.dstack([g, g, g])),
    ]
    for encoding, stored, want_rgb, want_bgr in cases:
        msg = image_msg(encoding, stored.reshape(H, -1), pad=5)
        for order, want in (("rgb", want_rgb), ("bgr", want_bgr)):
            out = image_to_array(msg, order)
            assert out.shape == (H, W, 3) and out.dtype == np.uint8, (encoding, order)
            np.testing.assert_array_equal(out, want, err_msg=f"{encoding} -> {order}")


@pytest.mark.parametrize("bigendian", [0, 1])
def test_sixteen_bit_colour_and_mono_scale_by_shift(bigendian):
    px = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    hi = (px // 256).astype(np.uint8)  # top byte of each sample
    wire_dtype = ">u2" if bigendian else "<u2"
    rgb16 = image_msg("rgb16", px.astype(wire_dtype).view(np.uint8).reshape(H, -1), 1, bigendian)
    bgr16 = image_msg("bgr16", px.astype(wire_dtype).view(np.uint8).reshape(H, -1), 0, bigendian)
    mono = image_msg("mono16", px[..., 0].astype(wire_dtype).view(np.uint8), 5, bigendian)
    np.testing.assert_array_equal(image_to_array(rgb16, "rgb"), hi)
    np.testing.assert_array_equal(image_to_array(rgb16, "bgr"), hi[..., ::-1])
    np.testing.assert_array_equal(image_to_array(bgr16, "bgr"), hi)
    np.testing.assert_array_equal(image_to_array(bgr16, "rgb"), hi[..., ::-1])
    grey = hi[..., 0]
    np.testing.assert_array_equal(image_to_array(mono, "rgb"), np.dstack([grey, grey, grey]))


@pytest.mark.parametrize("bigendian", [0, 1])
def test_sixteen_bit_with_alpha_drops_alpha_and_keeps_the_top_byte(bigendian):
    px = RNG.integers(0, 65536, (H, W, 4), dtype=np.uint16)  # R, G, B, A
    hi = (px[..., :3] // 256).astype(np.uint8)
    wire_dtype = ">u2" if bigendian else "<u2"
    rgba = image_msg("rgba16", px.astype(wire_dtype).view(np.uint8).reshape(H, -1), 3, bigendian)
    bgra_px = np.ascontiguousarray(px[..., [2, 1, 0, 3]])
    bgra = image_msg("bgra16", bgra_px.astype(wire_dtype).view(np.uint8).reshape(H, -1), 0,
                     bigendian)
    for msg in (rgba, bgra):
        np.testing.assert_array_equal(image_to_array(msg, "rgb"), hi, err_msg=msg.encoding)
        np.testing.assert_array_equal(image_to_array(msg, "bgr"), hi[..., ::-1])
    native = image_to_array(bgra)
    assert native.shape == (H, W, 4) and native.dtype == np.uint16
    np.testing.assert_array_equal(native, bgra_px)
    assert native_order(bgra) == "bgr" and native_order(rgba) == "rgb"


@pytest.mark.parametrize("data_type", [np.ndarray, bytearray, array.array])
@pytest.mark.parametrize("encoding", ["bgr8", "mono8"])
def test_zero_copy_views_share_the_message_buffer(encoding, data_type):
    channels = 3 if encoding == "bgr8" else 1
    pixels = RNG.integers(0, 256, (H, W * channels), dtype=np.uint8)
    msg = image_msg(encoding, pixels, pad=5, data_type=data_type)
    out = image_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    if encoding == "bgr8":
        assert np.shares_memory(to_frame(msg, "bgr"), np.frombuffer(msg.data, np.uint8))
        assert not np.shares_memory(to_frame(msg, "rgb"), np.frombuffer(msg.data, np.uint8))


def test_plain_list_data_is_accepted():
    rows = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    msg = image_msg("mono8", rows)
    msg.data = list(msg.data)
    np.testing.assert_array_equal(image_to_array(msg), rows)


@pytest.mark.parametrize("wrap", [lambda v: np.array(v, np.int64), lambda v: np.array(v, np.uint16),
                                  lambda v: array.array("H", v), lambda v: array.array("i", v)],
                         ids=["int64 array", "uint16 array", "array H", "array i"])
def test_wider_numbers_are_values_not_bytes(wrap):
    # A hand-built message with numbers in a wider type: the numbers are the pixels, as
    # with a plain list; their bytes read as pixels would be a wrong image.
    rows = np.arange(10, 10 + H * W, dtype=np.uint8).reshape(H, W)
    msg = image_msg("mono8", rows)
    msg.data = wrap(list(msg.data))
    np.testing.assert_array_equal(image_to_array(msg), rows)
    msg.data = wrap([300] * (H * W))
    with pytest.raises(ImageCodecError, match="not a byte sequence"):
        image_to_array(msg)


def test_float_data_is_refused():
    msg = image_msg("mono8", np.zeros((H, W), np.uint8))
    msg.data = np.zeros(H * W, np.float64)
    with pytest.raises(ImageCodecError, match="not a byte sequence"):
        image_to_array(msg)


def bt601(y, u, v):
    """Limited-range BT.601 YUV -> RGB, the formula OpenCV uses for 4:2:2."""
    c, d, e = 1.164 * (y - 16.0), u - 128.0, v - 128.0
    rgb = np.stack([c + 1.596 * e, c - 0.813 * e - 0.391 * d, c + 2.018 * d], axis=-1)
    return np.clip(np.rint(rgb), 0, 255)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_against_bt601(encoding):
    y = RNG.integers(16, 236, (H, W)).astype(np.uint8)
    u = RNG.integers(16, 241, (H, W // 2)).astype(np.uint8)
    v = RNG.integers(16, 241, (H, W // 2)).astype(np.uint8)
    quads = np.empty((H, W // 2, 4), np.uint8)
    if encoding in ("yuv422", "uyvy"):  # U0 Y0 V0 Y1
        quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:  # Y0 U0 Y1 V0
        quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    want = bt601(y.astype(float), np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))
    msg = image_msg(encoding, quads.reshape(H, -1), pad=3)
    got_rgb = image_to_array(msg, "rgb").astype(int)
    got_bgr = image_to_array(msg, "bgr").astype(int)
    assert np.abs(got_rgb - want).max() <= 2
    assert np.abs(got_bgr - want[..., ::-1]).max() <= 2


# ROS pattern name -> colour index at (0,0), (0,1), (1,0), (1,1); 0=R 1=G 2=B
BAYER = {
    "bayer_rggb8": (0, 1, 1, 2),
    "bayer_bggr8": (2, 1, 1, 0),
    "bayer_gbrg8": (1, 2, 0, 1),
    "bayer_grbg8": (1, 0, 2, 1),
}


@pytest.mark.parametrize("encoding", sorted(BAYER))
def test_bayer_demosaic_recovers_flat_colour(encoding):
    colour = np.array([200, 120, 40], np.uint8)  # R, G, B all distinct
    mosaic = np.empty((10, 12), np.uint8)
    for (dy, dx), idx in zip([(0, 0), (0, 1), (1, 0), (1, 1)], BAYER[encoding], strict=True):
        mosaic[dy::2, dx::2] = colour[idx]
    msg = image_msg(encoding, mosaic, pad=7)
    rgb = image_to_array(msg, "rgb")[2:-2, 2:-2].astype(int)
    bgr = image_to_array(msg, "bgr")[2:-2, 2:-2].astype(int)
    assert np.abs(rgb - colour.astype(int)).max() <= 1
    assert np.abs(bgr - colour[::-1].astype(int)).max() <= 1


def test_native_order():
    def img(encoding):
        return types.SimpleNamespace(encoding=encoding)

    for encoding in ("bgr8", "bgra8", "bgr16", "8UC3"):
        assert native_order(img(encoding)) == "bgr"
    for encoding in ("rgb8", "rgba8", "rgb16", "mono8", "mono16", "bayer_rggb8", "yuv422"):
        assert native_order(img(encoding)) == "rgb"
    assert native_order(types.SimpleNamespace(format="jpeg")) == "bgr"


def good_rgb8():
    return image_msg("rgb8", np.zeros((H, W * 3), np.uint8), pad=2)


def with_fields(**changes):
    msg = good_rgb8()
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(
    ("msg", "fragment"),
    [
        (with_fields(data=bytes(H * (W * 3 + 2) - 1)), "expected at least height\\*step"),
        (with_fields(data=bytes(10)), "'rgb8' 8x6 step 26: data has 10 bytes"),
        (with_fields(step=W * 3 - 1), "smaller than width"),
        (with_fields(encoding="32FC7"), "unsupported image encoding '32FC7'"),
        (with_fields(height=0), "zero-size"),
        (with_fields(height="six"), "field 'height' must be an integer"),
        (with_fields(width=float("inf")), "field 'width' must be an integer"),
        (with_fields(width=0), "zero-size"),
        (with_fields(data=b""), "empty"),
        (with_fields(data=None), "empty"),
        (with_fields(data=[1, 300]), "not a byte sequence"),
        (with_fields(data=[1, -1]), "not a byte sequence"),
        (with_fields(data=[0.5] * 156), "not a byte sequence"),
        (with_fields(data="x" * 156), "not a byte sequence"),
        (image_msg("yuv422", np.zeros((2, 6), np.uint8)), "even width"),
        (image_msg("yuyv", np.zeros((2, 10), np.uint8)), "even width"),
        (types.SimpleNamespace(encoding="mono8", height=1, width=1), "no field 'step'"),
    ],
)
def test_bad_images_raise(msg, fragment):
    with pytest.raises(ImageCodecError, match=fragment):
        image_to_array(msg, "rgb")


def test_bad_orders_raise():
    with pytest.raises(ImageCodecError, match="order"):
        image_to_array(good_rgb8(), "hsv")
    with pytest.raises(ImageCodecError, match="order"):
        to_frame(good_rgb8(), "mono")
    with pytest.raises(ImageCodecError, match="neither an Image"):
        to_frame(types.SimpleNamespace(data=b"x"))

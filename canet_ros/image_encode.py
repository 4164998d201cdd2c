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

"""The writing half of :mod:`canet_ros.image_codec`: ndarray -> sensor_msgs/Image fields.

Kept apart so the decoding half stays one readable file; import these names from
``canet_ros.image_codec``, which re-exports them.
"""

import array as pyarray
from typing import Any

import numpy as np

from .errors import ImageCodecError

__all__ = ["array_to_image_fields", "fill_image", "image_buffer"]

# encoding -> (numpy dtype written, ndim expected)
_OUTPUT_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 2),
    "mono16": (np.dtype("<u2"), 2),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
}


def _encode(array_in: np.ndarray, encoding: str) -> tuple[int, int, int, np.ndarray]:
    """Validate `array_in` for `encoding`; return height, width, step and flat bytes."""
    spec = _OUTPUT_ENCODINGS.get(encoding)
    if spec is None:
        raise ImageCodecError(f"cannot encode to '{encoding}' (supported: "
                              f"{', '.join(_OUTPUT_ENCODINGS)})")
    dtype, ndim = spec
    if not isinstance(array_in, np.ndarray):
        raise ImageCodecError(f"'{encoding}' needs a numpy array, got {type(array_in).__name__}")
    shape = array_in.shape
    wrong_dtype = array_in.dtype.kind != "u" or array_in.dtype.itemsize != dtype.itemsize
    wrong_shape = array_in.ndim != ndim or (ndim == 3 and shape[2] != 3)
    if wrong_dtype or wrong_shape:
        want = "HxW" if ndim == 2 else "HxWx3"
        raise ImageCodecError(
            f"'{encoding}' needs a {want} {dtype.name} array, got {shape} {array_in.dtype}"
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ImageCodecError(f"'{encoding}': zero-size array {shape}")
    contiguous = np.ascontiguousarray(array_in, dtype=dtype)
    step = shape[1] * (3 if ndim == 3 else 1) * dtype.itemsize
    return shape[0], shape[1], step, contiguous.reshape(-1).view(np.uint8)


def array_to_image_fields(array: np.ndarray, encoding: str, header: Any = None) -> dict[str, Any]:
    """sensor_msgs/Image field values for mono8, mono16 (little-endian), rgb8 or bgr8."""
    height, width, step, flat = _encode(array, encoding)
    return {
        "header": header,
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": step,
        "data": flat.tobytes(),
    }


def fill_image(msg: Any, array: np.ndarray, encoding: str, header: Any = None) -> None:
    """Write `array` into an existing Image-like message in place (docs/image_codec.md).

    `header` is assigned as-is (publishing copies it); None keeps the message's. `data`
    becomes an ndarray if it was one (rosbags), else an array.array('B') (rclpy takes it
    without converting each element); :func:`image_buffer`'s view of `data` stays put.
    """
    height, width, step, flat = _encode(array, encoding)
    if header is not None:
        msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = step
    data = getattr(msg, "data", None)
    if isinstance(data, pyarray.array) and data.buffer_info() == (flat.ctypes.data, flat.size):
        return  # already there: written in place
    if isinstance(data, np.ndarray):
        msg.data = flat.copy()
    else:
        buffer = pyarray.array("B")
        buffer.frombytes(memoryview(flat))
        msg.data = buffer


def image_buffer(msg: Any, shape: tuple[int, ...], dtype: Any = np.uint8) -> np.ndarray:
    """Return an array of `shape` and `dtype` living in `msg.data`, for in-place output.

    `msg.data` becomes (or stays, at that size) an array.array('B'); what is written into
    the array is then published without a copy (:func:`fill_image`, then ``publish``,
    after which it may be written again). It holds the last image, or zeros.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    if not _holds_bytes(getattr(msg, "data", None), size):
        msg.data = pyarray.array("B", bytes(size))
        # Read back: a generated message may store a copy (Jazzy's setter does unless
        # check_fields), and only what it holds is published.
        if not _holds_bytes(msg.data, size):
            raise ImageCodecError(f"{type(msg).__name__}.data does not keep an array('B')")
    return np.frombuffer(msg.data, dtype).reshape(shape)


def _holds_bytes(data: Any, size: int) -> bool:
    return isinstance(data, pyarray.array) and data.typecode == "B" and len(data) == size

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

"""Convert sensor_msgs/Image and sensor_msgs/CompressedImage to and from numpy arrays.

Nothing here imports ROS: messages are read by field name only, so the same code serves
rclpy messages (``data`` is ``array.array('B')``), rosbags messages (``data`` is a uint8
ndarray) and test doubles. See docs/image_codec.md for where this differs from cv_bridge.
"""

import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .errors import ImageCodecError, brief
from .image_encode import array_to_image_fields, fill_image, image_buffer
from .image_files import ImageFileError, encoded_size

__all__ = ["MAX_PIXELS", "ImageCodecError", "array_to_image_fields", "compressed_to_array",
           "fill_image", "image_buffer", "image_to_array", "native_order", "to_frame"]

# Most pixels a compressed image may claim (2^26, about 67 MP; docs/image_codec.md): above
# any camera's frame, and a 48 KB PNG claiming 20000x20000 would otherwise decode to 1.2 GB.
MAX_PIXELS = 1 << 26


@dataclass(frozen=True)
class _Layout:
    channels: int  # samples per pixel as stored in the byte buffer
    itemsize: int  # bytes per sample
    colour: str  # mono | rgb | bgr | rgba | bgra | bayer | yuv


# Aliases share a line. OpenCV's default channel order is BGR, and so is cv_bridge's
# reading of 8UC3.
_LAYOUTS: dict[str, _Layout] = {
    "mono8": _Layout(1, 1, "mono"), "8uc1": _Layout(1, 1, "mono"),
    "mono16": _Layout(1, 2, "mono"), "16uc1": _Layout(1, 2, "mono"),
    "rgb8": _Layout(3, 1, "rgb"), "bgr8": _Layout(3, 1, "bgr"), "8uc3": _Layout(3, 1, "bgr"),
    "rgba8": _Layout(4, 1, "rgba"), "bgra8": _Layout(4, 1, "bgra"),
    "rgb16": _Layout(3, 2, "rgb"), "bgr16": _Layout(3, 2, "bgr"),
    "rgba16": _Layout(4, 2, "rgba"), "bgra16": _Layout(4, 2, "bgra"),
    **{f"bayer_{p}8": _Layout(1, 1, "bayer") for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{name: _Layout(2, 1, "yuv") for name in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")},
}

# (to RGB, to BGR). OpenCV names Bayer patterns after the second row's 2nd/3rd pixels, so
# ROS "rggb" (R at the origin) is OpenCV "BG"; the test suite checks this from a hand mosaic.
_CV_CODES: dict[str, tuple[int, int]] = {
    "bayer_rggb8": (cv2.COLOR_BayerBG2RGB, cv2.COLOR_BayerBG2BGR),
    "bayer_bggr8": (cv2.COLOR_BayerRG2RGB, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": (cv2.COLOR_BayerGR2RGB, cv2.COLOR_BayerGR2BGR),
    "bayer_grbg8": (cv2.COLOR_BayerGB2RGB, cv2.COLOR_BayerGB2BGR),
    # ROS "yuv422" has always meant UYVY byte order (U0 Y0 V0 Y1), not YUYV.
    "yuv422": (cv2.COLOR_YUV2RGB_UYVY, cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": (cv2.COLOR_YUV2RGB_UYVY, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (cv2.COLOR_YUV2RGB_YUY2, cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": (cv2.COLOR_YUV2RGB_YUY2, cv2.COLOR_YUV2BGR_YUY2),
}

_JPEG_MAGIC = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"  # ends the data (not just in an EXIF thumbnail); 00/FF padding may follow
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# compressed_depth_image_transport prefixes the PNG with a 12-byte config header
# (int32 format + two float32 quantisation parameters).
_DEPTH_HEADER_BYTES = 12


def _field(msg: Any, name: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise ImageCodecError(f"message {type(msg).__name__} has no field '{name}'") from None


def _int_field(msg: Any, name: str) -> int:
    value = _field(msg, name)
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise ImageCodecError(f"field '{name}' must be an integer, got {brief(value)}") from None


def _lookup(encoding: Any) -> tuple[str, _Layout]:
    key = str(encoding).strip().lower()
    layout = _LAYOUTS.get(key)
    if layout is None:
        supported = ", ".join(sorted(_LAYOUTS))
        raise ImageCodecError(f"unsupported image encoding {brief(str(encoding))} "
                              f"(supported: {supported})")
    return key, layout


def _check_order(order: Any, allowed: tuple[str, ...]) -> str:
    if order not in allowed:
        raise ImageCodecError(f"order must be one of {allowed}, got {order!r}")
    return str(order)


def _byte_view(data: Any, context: str) -> np.ndarray:
    """Flat uint8 view of a message's data field, sharing memory whenever possible."""
    if data is None:
        raise ImageCodecError(f"{context}: data is empty (None)")
    # Wider items are numbers, not bytes: range-checked, never reinterpreted as bytes.
    if isinstance(data, np.ndarray):
        flat = np.ascontiguousarray(data).reshape(-1)
        raw = flat if flat.dtype == np.uint8 else _ints_as_bytes(flat, context)
    else:
        try:
            view = memoryview(data)
            raw = (np.frombuffer(view, dtype=np.uint8) if view.itemsize == 1
                   else _ints_as_bytes(view.tolist(), context))
        except (TypeError, ValueError):
            raw = _ints_as_bytes(data, context)
    if raw.size == 0:
        raise ImageCodecError(f"{context}: data is empty")
    return raw


def _ints_as_bytes(data: Any, context: str) -> np.ndarray:
    """Plain sequences of ints (hand-built messages), which have no buffer to share."""
    # Checked here, not left to the cast: numpy 1.x wraps 300 to 44 and 1.5 to 1 silently.
    try:
        values = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise ImageCodecError(f"{context}: data is not a byte sequence ({exc})") from None
    if values.size and (values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255):
        raise ImageCodecError(f"{context}: data is not a byte sequence of integers 0-255 "
                              f"(holds {values.dtype})")
    return values.astype(np.uint8).reshape(-1)


def _native_view(msg: Any, encoding: str, layout: _Layout) -> np.ndarray:
    height, width, step = (_int_field(msg, name) for name in ("height", "width", "step"))
    context = f"image '{encoding}' {width}x{height} step {step}"
    if height <= 0 or width <= 0:
        raise ImageCodecError(f"{context}: zero-size image (height and width must be > 0)")
    pixel_bytes = layout.channels * layout.itemsize
    if step < width * pixel_bytes:
        raise ImageCodecError(f"{context}: step {step} is smaller than width*pixel size = "
                              f"{width}*{pixel_bytes}")
    if layout.colour == "yuv" and width % 2:
        raise ImageCodecError(f"{context}: YUV 4:2:2 needs an even width, got {width}")
    raw = _byte_view(_field(msg, "data"), context)
    if raw.size < height * step:
        raise ImageCodecError(f"{context}: data has {raw.size} bytes, expected at least "
                              f"height*step = {height * step}")
    if layout.itemsize == 1:
        dtype = np.dtype(np.uint8)
    else:
        dtype = np.dtype(">u2" if _field(msg, "is_bigendian") else "<u2")
    shape: tuple[int, ...] = (height, width)
    strides: tuple[int, ...] = (step, pixel_bytes)
    if layout.channels > 1:
        shape += (layout.channels,)
        strides += (layout.itemsize,)
    # Explicit strides let `step` carry any padding, even one that is not a whole pixel.
    view = np.ndarray(shape, dtype=dtype, buffer=raw, strides=strides)
    if layout.itemsize > 1 and (not dtype.isnative or not view.flags.aligned):
        # Foreign byte order or odd padding: hand callers a plain native uint16 array.
        view = view.astype(np.uint16)
    return view


def _to_eight_bit(img: np.ndarray) -> np.ndarray:
    return img if img.dtype == np.uint8 else (img >> 8).astype(np.uint8)


def _cv_convert(img: np.ndarray, code: int, context: str) -> np.ndarray:
    try:
        return cv2.cvtColor(img, code)
    except cv2.error as exc:
        raise ImageCodecError(f"{context}: OpenCV conversion failed ({exc.msg})") from None


def _reorder(img: np.ndarray, colour: str, order: str) -> np.ndarray:
    """HxWx3 uint8 in `order` from a mono/rgb/bgr/rgba/bgra array of 8 or 16 bits."""
    eight = _to_eight_bit(img)
    if colour == "mono":
        if eight.ndim == 3:
            eight = eight[:, :, 0]
        return np.repeat(eight[:, :, np.newaxis], 3, axis=2)
    if eight.shape[2] == 3 and colour == order:
        return eight  # already right: keep the zero-copy view
    picked = eight[:, :, :3] if colour[:3] == order else eight[:, :, 2::-1]
    return np.ascontiguousarray(picked)


def image_to_array(msg: Any, order: str | None = None) -> np.ndarray:
    """Decode a sensor_msgs/Image.

    order=None: the stored layout (HxW mono, HxWxC, uint16 for 16-bit), a view of the buffer
    where byte order and alignment allow (read-only if it is); "rgb"/"bgr": HxWx3 uint8.
    """
    encoding, layout = _lookup(_field(msg, "encoding"))
    native = _native_view(msg, encoding, layout)
    if order is None:
        return native
    order = _check_order(order, ("rgb", "bgr"))
    if encoding in _CV_CODES:
        code = _CV_CODES[encoding][0 if order == "rgb" else 1]
        return _cv_convert(native, code, f"image '{encoding}'")
    return _reorder(native, layout.colour, order)


# sensor_msgs::image_encodings::isColor: the sources whose payload order the string gives.
_COLOUR_SOURCES = frozenset(("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16",
                             "bgra16"))


@dataclass(frozen=True)
class _CompressedFormat:
    source_encoding: str  # "" when the publisher did not say
    depth_transport: bool  # compressed_depth_image_transport framing
    payload_order: str  # channel order of the decoded buffer


def _parse_format(text: Any) -> _CompressedFormat:
    """Parse strings like "jpeg", "bgr8; jpeg compressed bgr8", "16UC1; compressedDepth png"."""
    lowered = str(text or "").strip().lower()
    head, sep, tail = lowered.partition(";")
    source = head.strip() if sep else ""
    described = tail if sep else lowered
    if source in _COLOUR_SOURCES:
        # image_transport's subscriber: a colour source's payload is BGR only where the
        # string says "compressed bgr...", otherwise RGB.
        payload_order = "bgr" if re.search(r"compressed\s+bgr", described) else "rgb"
    else:  # bare "jpeg"/"png", or a grey or bayer source: OpenCV's BGR unless told "rgb"
        payload_order = "rgb" if re.search(r"compressed\s+rgb", described) else "bgr"
    return _CompressedFormat(source, "compresseddepth" in described, payload_order)


def _payload(raw: np.ndarray, fmt: _CompressedFormat, context: str) -> np.ndarray:
    head = raw[:16].tobytes()
    if head.startswith(_PNG_MAGIC):
        return raw
    if head.startswith(_JPEG_MAGIC):
        if not raw.tobytes().rstrip(b"\x00\xff").endswith(_JPEG_EOI):
            raise ImageCodecError(f"{context}: truncated JPEG (no end-of-image marker)")
        return raw
    if fmt.depth_transport and raw[_DEPTH_HEADER_BYTES:].tobytes().startswith(_PNG_MAGIC):
        if fmt.source_encoding not in ("", "16uc1", "mono16"):
            # 32FC1 depth is stored as quantised inverse depth; decoding it as plain
            # uint16 would be a silently wrong image.
            raise ImageCodecError(f"{context}: compressedDepth for "
                                  f"{brief(fmt.source_encoding)} is not supported")
        return raw[_DEPTH_HEADER_BYTES:]
    raise ImageCodecError(f"{context}: data is neither JPEG nor PNG (starts with {head[:8]!r})")


def _decode(payload: np.ndarray, context: str) -> np.ndarray:
    try:
        size = encoded_size(payload)  # before decoding: the header's claim is cheap to read
    except ImageFileError as exc:
        raise ImageCodecError(f"{context}: {exc}") from None
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageCodecError(f"{context}: claims {size[0]}x{size[1]} pixels, over the "
                              f"limit of {MAX_PIXELS} (2^26, about 67 MP; docs/image_codec.md)")
    try:
        decoded = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageCodecError(f"{context}: cannot decode ({exc.msg})") from None
    if decoded is None or decoded.size == 0:
        raise ImageCodecError(f"{context}: cannot decode compressed bytes")
    if decoded.dtype not in (np.uint8, np.uint16):
        raise ImageCodecError(f"{context}: decoded to unsupported dtype {decoded.dtype}")
    return decoded


def compressed_to_array(msg: Any, order: str | None = "bgr") -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage holding JPEG or PNG data.

    order="rgb"/"bgr" returns HxWx3 uint8 (16-bit PNG scaled by >>8, alpha dropped).
    order=None returns the decoded array untouched (HxW, HxWx3 or HxWx4; uint8 or
    uint16). order="mono" returns HxW in the decoded bit depth, converting colour to grey
    (a bayer mosaic is demosaiced first, at 8 bits).
    """
    if order is not None:
        order = _check_order(order, ("rgb", "bgr", "mono"))
    raw_format = _field(msg, "format")
    context = f"compressed image (format {brief(str(raw_format))})"
    fmt = _parse_format(raw_format)
    decoded = _decode(_payload(_byte_view(_field(msg, "data"), context), fmt, context), context)
    if order is None:
        return decoded
    if decoded.ndim == 2 and fmt.source_encoding.startswith("bayer_"):
        # A bayer camera's PNG holds the raw mosaic (image_transport compresses it as is);
        # its subscriber's cv_bridge demosaics it, as image_to_array does a raw message.
        decoded, fmt = _demosaic(decoded, fmt.source_encoding, context), _BGR_PAYLOAD
    if order == "mono" and decoded.ndim == 2:
        return decoded
    if order == "mono":
        code = cv2.COLOR_RGB2GRAY if fmt.payload_order == "rgb" else cv2.COLOR_BGR2GRAY
        return _cv_convert(decoded[:, :, :3], code, context)
    colour = "mono" if decoded.ndim == 2 else fmt.payload_order
    return _reorder(decoded, colour, order)


_BGR_PAYLOAD = _CompressedFormat("", False, "bgr")


def _demosaic(mosaic: np.ndarray, source: str, context: str) -> np.ndarray:
    """Return the BGR image of a decoded bayer mosaic (16-bit taken >> 8, as elsewhere)."""
    key = source.replace("16", "8")
    if key not in _CV_CODES:
        raise ImageCodecError(f"{context}: unknown bayer pattern {brief(source)}")
    if mosaic.dtype == np.uint16:
        mosaic = (mosaic >> 8).astype(np.uint8)
    return _cv_convert(np.ascontiguousarray(mosaic), _CV_CODES[key][1], context)


def to_frame(msg: Any, order: str = "rgb") -> np.ndarray:
    """HxWx3 uint8 frame in `order` from either an Image or a CompressedImage.

    It may be a read-only view of the message buffer: copy it before drawing on it.
    """
    order = _check_order(order, ("rgb", "bgr"))
    if hasattr(msg, "encoding"):
        return image_to_array(msg, order)
    if hasattr(msg, "format"):
        return compressed_to_array(msg, order)
    raise ImageCodecError(f"{type(msg).__name__} is neither an Image (encoding) nor a "
                          "CompressedImage (format)")


def native_order(msg: Any) -> str:
    """Channel order ("bgr" or "rgb") overlays for this input should be published in."""
    if not hasattr(msg, "encoding"):
        _field(msg, "format")
        return "bgr"  # compressed payloads decode to BGR, as image_transport publishes them
    _, layout = _lookup(msg.encoding)
    return "bgr" if layout.colour in ("bgr", "bgra") else "rgb"

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

"""Frame -> normalised network input on the CPU (numpy/OpenCV; no torch).

The reference resizes the frame bilinearly (align_corners=False, no antialiasing) to
the network size in float, then computes ``(x / 255 - mean) / std``, NCHW, RGB.

* Without a resize each channel goes through a 256-entry table straight into its NCHW
  plane: bit-identical to the reference.
* With one, the frame is widened to 16 bits (x 256) and resized there (OpenCV's 16-bit
  bilinear, within 1/512 of a grey level of the float resize, at half the cost of
  resizing floats), then scaled into the planes (normalisation is affine and bilinear
  weights sum to one, so it commutes with the resize). Resizing the bytes themselves
  would be cheaper still, but rounding to whole grey levels moves this network's
  confidence by up to 20/255 (docs/performance.md).
* With numba installed, one compiled loop (``kernels.resize_normalise``) resizes in
  float and normalises straight from the uint8 frame: the reference's values within
  1e-5, in one pass instead of three.

``device_ops.preprocess`` is the same on a device.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import cv2
import numpy as np

from . import kernels

__all__ = [
    "DEFAULT_RESOLUTION", "MAX_SIDE", "MIN_SIDE", "Preprocessor", "by_rows", "check_frame",
    "normalisation_tables", "parse_resolution", "resize_frame_cpu", "share_rows",
]

# Used when neither the caller nor the checkpoint names a network input size.
DEFAULT_RESOLUTION = (1024, 512)
# Below 32 px the 1/32 context stage is under one pixel; above 16384 is surely a typo.
MIN_SIDE = 32
MAX_SIDE = 16384
_RES_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_resolution(value: tuple[int, int] | Sequence[int] | str) -> tuple[int, int]:
    """``(W, H)`` or ``"WxH"`` -> ``(W, H)``; raises ValueError for anything else."""
    if isinstance(value, str):
        match = _RES_PATTERN.match(value)
        if not match:
            raise ValueError(f"resolution {value!r} is not of the form WIDTHxHEIGHT, e.g. 1024x512")
        width, height = int(match.group(1)), int(match.group(2))
    else:
        try:
            width, height = value
        except (TypeError, ValueError):
            raise ValueError(f"resolution {value!r} must be (width, height) or 'WxH'") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   for v in (width, height)):
            raise ValueError(f"resolution {value!r} must hold two integers")
        width, height = int(width), int(height)
    for name, side in (("width", width), ("height", height)):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"resolution {width}x{height}: {name} must be in "
                             f"[{MIN_SIDE}, {MAX_SIDE}]")
    return width, height


def check_frame(frame: object) -> np.ndarray:
    """Return the frame itself if it is HxWx3 uint8; raise ValueError otherwise."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be HxWx3 uint8, got {frame.shape} {frame.dtype}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty: {frame.shape}")
    return frame


def normalisation_tables(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(3, 256, 1) float32, RGB: byte value -> normalised value.

    float32 operations in the reference's order, each correctly rounded as torch's are,
    so without a resize the network input is bit-identical to the reference's.
    """
    values = np.arange(256, dtype=np.float32)[None, :] / np.float32(255)
    m = np.asarray(mean, np.float32)[:, None]
    s = np.asarray(std, np.float32)[:, None]
    return np.ascontiguousarray(((values - m) / s)[:, :, None])


def resize_frame_cpu(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the uint8 frame at ``size`` (W, H), bilinear (the frame itself if it fits)."""
    if frame.shape[:2] == (size[1], size[0]):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


class Preprocessor:
    """Frames -> the network input (1, 3, H, W) float32 RGB, in a buffer reused per call."""

    def __init__(self, size: tuple[int, int], mean: Sequence[float], std: Sequence[float]):
        self.size = size
        width, height = size
        self.out = np.zeros((1, 3, height, width), np.float32)
        self._tables = normalisation_tables(mean, std)
        m = np.asarray(mean, np.float64)
        s = np.asarray(std, np.float64)
        self._scale = (1.0 / (255.0 * 256.0 * s)).astype(np.float32)  # per 16-bit step
        self._bias = (-m / s).astype(np.float32)
        self._wide: np.ndarray | None = None
        self._small: np.ndarray | None = None
        self._frame: np.ndarray | None = None  # the last frame, when _small is not made
        self._float_scale = (1.0 / (255.0 * s)).astype(np.float32)
        self._axes: dict[tuple[int, int], tuple[kernels.AxisTables, kernels.AxisTables]] = {}

    def __call__(self, frame: np.ndarray, order: str, out: np.ndarray | None = None,
                 helper: Executor | None = None) -> np.ndarray:
        """Fill ``out`` (default: the reused buffer) from an HxWx3 uint8 frame in ``order``.

        With a ``helper`` (a one-thread executor) the passes over a frame of another size
        share their rows with a second core; the result is the same bit for bit.
        """
        out = self.out if out is None else out
        width, height = self.size
        if frame.shape[:2] == (height, width):
            self._small = frame
            planes = cv2.split(frame)
            for rgb in range(3):
                cv2.LUT(planes[rgb if order == "rgb" else 2 - rgb], self._tables[rgb],
                        dst=out[0, rgb])
            return out
        if kernels.available():
            self._small, self._frame = None, frame
            self._resize_compiled(frame, order, out[0], helper)
            return out
        if self._wide is None or self._wide.shape != frame.shape:
            self._wide = np.empty(frame.shape, np.uint16)
        # Widened and shifted in one pass (a widening copy, then a shift, read and wrote
        # the 16-bit frame twice: 1 ms more at 1920x1200).
        by_rows(helper, frame.shape[0], lambda rows: np.left_shift(
            frame[rows], 8, out=self._wide[rows], dtype=np.uint16))
        self._small = cv2.resize(self._wide, self.size, interpolation=cv2.INTER_LINEAR)
        by_rows(helper, height, lambda rows: self._planes(order, out, rows))
        return out

    def _resize_compiled(self, frame: np.ndarray, order: str, out: np.ndarray,
                         helper: Executor | None) -> None:
        width, height = self.size
        key = frame.shape[:2]
        if key not in self._axes:
            if len(self._axes) > 8:  # a camera's size or two; never grow without bound
                self._axes.clear()
            self._axes[key] = (kernels.AxisTables(height, key[0]),
                               kernels.AxisTables(width, key[1], stride=3))
        rows, cols = self._axes[key]
        chan = np.arange(3) if order == "rgb" else np.arange(2, -1, -1)
        frame = np.ascontiguousarray(frame)
        # Half the rows on the helper's core: 1.4-4 ms less per 1920x1200 frame in the
        # pipeline (docs/performance.md), though no faster in a loop of its own.
        by_rows(helper, height, lambda part: kernels.resize_normalise(
            frame, out, rows, cols, chan, self._float_scale, self._bias, part.start,
            part.stop))

    def _planes(self, order: str, out: np.ndarray, rows: slice) -> None:
        small = self._small[rows]
        for rgb in range(3):
            plane = cv2.extractChannel(small, rgb if order == "rgb" else 2 - rgb)
            np.multiply(plane, self._scale[rgb], out=out[0, rgb, rows])
            out[0, rgb, rows] += self._bias[rgb]

    def small_frame(self) -> np.ndarray:
        """Return the last frame at network size as uint8 (network-size overlays blend onto it)."""
        if self._small is None:  # the compiled resize made only the network input
            self._small = resize_frame_cpu(self._frame, self.size)
        small = self._small
        return small if small.dtype == np.uint8 else cv2.convertScaleAbs(small, alpha=1 / 256)


def by_rows(helper: Executor | None, height: int, work: Callable[[slice], Any]) -> None:
    """Run ``work`` over all rows, the lower half on ``helper`` meanwhile if there is one.

    For passes in which numpy and OpenCV release the GIL, so the halves run on two cores
    (this module's resize, ``postprocess``'s network-size argmax).
    """
    if helper is None or height < 64:
        work(slice(0, height))
        return
    half = height // 2
    lower = helper.submit(work, slice(half, height))
    work(slice(0, half))
    lower.result()


def share_rows(helper: Executor | None, height: int, work: Callable[[slice], Any],
               bands: int = 8) -> None:
    """Run ``work`` over all rows in bands taken in turn by this thread and a free helper.

    For work queued behind the helper's own (the frame path's confidence): if the
    helper is still busy, this thread takes all ``bands`` and does not wait for it;
    if it is free, the two share them. An error in either is raised here.
    """
    if helper is None or height < 2 * bands:
        work(slice(0, height))
        return
    edges = np.linspace(0, height, bands + 1).astype(int)
    state = {"next": 0, "left": bands, "error": None}
    lock = threading.Condition()

    def run() -> None:
        while True:
            with lock:
                band = state["next"]
                if band >= bands:
                    return
                state["next"] = band + 1
            try:
                work(slice(edges[band], edges[band + 1]))
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller below
                state["error"] = exc
            finally:
                with lock:
                    state["left"] -= 1
                    lock.notify_all()

    helper.submit(run)
    run()
    with lock:
        lock.wait_for(lambda: state["left"] == 0)
    if state["error"] is not None:
        raise state["error"]

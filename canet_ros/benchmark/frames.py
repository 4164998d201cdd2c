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

"""The benchmark's frames and what the node does with each: decode, infer, fill Images.

A module of its own so every part of the benchmark (the main run, --compare's CPU
precisions) times the same frame path without reaching back into the package.
"""
from __future__ import annotations

import array
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

from ..image_files import ImageFileError, read_image
from ..inference import SegmentationEngine
from ..progress import progress as progress_bar
from .timing import sync


def make_image_msg(frame_bgr: np.ndarray) -> SimpleNamespace:
    """Return a sensor_msgs/Image look-alike: a bgr8 frame in an array('B'), as rclpy does."""
    from ..image_codec import array_to_image_fields

    fields = array_to_image_fields(frame_bgr, "bgr8")
    fields["data"] = array.array("B", fields["data"])
    return SimpleNamespace(**fields)


def _synthetic_frame(height: int, width: int) -> np.ndarray:
    """Smooth gradients plus noise: looks like nothing, for machines without the sample."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                     (xx + yy) * 255 // max(width + height - 2, 1)], axis=-1)
    noise = rng.integers(-20, 21, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _sample_frame() -> np.ndarray:
    """Return the first CamVid frame of the bundled sample bag (480x360, BGR)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from ..bag.sample import SAMPLE_BAG, SAMPLE_IMAGE_TOPIC
    from ..image_codec import compressed_to_array

    with AnyReader([SAMPLE_BAG], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as bag:
        connections = [c for c in bag.connections if c.topic == SAMPLE_IMAGE_TOPIC]
        for connection, _, raw in bag.messages(connections=connections):
            return compressed_to_array(bag.deserialize(raw, connection.msgtype), "bgr")
    raise ValueError(f"{SAMPLE_BAG}: no {SAMPLE_IMAGE_TOPIC} message")


def load_frame(source: str, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Return a BGR frame of ``size`` (W, H) and what it is: "sample", "synthetic" or an image file.

    The frame's content sets how many cells have mixed labels, i.e. part of the cost:
    a real street scene (the default) gives representative figures.
    """
    if source == "synthetic":
        return _synthetic_frame(size[1], size[0]), f"synthetic at {size[0]}x{size[1]}"
    if source == "sample":
        frame = _sample_frame()
        name = "sample (CamVid 0016E5, bundled bag)"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ValueError(f"--image {source}: no such file")
        try:
            frame = read_image(path, cv2.IMREAD_COLOR)
        except ImageFileError as exc:  # too many pixels for OpenCV: say so, not a traceback
            raise ValueError(f"--image {exc}") from None
        if frame is None:
            raise ValueError(f"--image {source}: not an image file OpenCV can read")
        name = str(source)
    if frame.shape[:2] != (size[1], size[0]):
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(frame), f"{name} at {size[0]}x{size[1]}"


OUTPUTS = ("labels", "color", "overlay", "confidence")


def _fill_outputs(result: Any, order: str, outs: dict[str, Any]) -> None:
    from ..image_codec import fill_image

    labels = "mono8" if result.labels.dtype == np.uint8 else "mono16"
    fill_image(outs["labels"], result.labels, labels)
    if result.color is not None:
        fill_image(outs["color"], result.color, "rgb8")
    if result.overlay is not None:
        fill_image(outs["overlay"], result.overlay, order + "8")
    if result.confidence is not None:
        fill_image(outs["confidence"], result.confidence, "mono8")


def _buffers(engine: SegmentationEngine, frame_hw: tuple[int, int], flags: dict[str, bool],
             outs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Return the outputs' arrays in the messages' own buffers, as the node hands them in."""
    from ..image_codec import image_buffer
    from ..inference.results import output_layout

    layout = output_layout(engine.out_hw(frame_hw), engine.label_dtype)
    wanted = ["labels"] + [name for name in OUTPUTS[1:] if flags.get(name)]
    return {name: image_buffer(outs[name], *layout[name]) for name in wanted}


class FramePipeline:
    """What the ROS node does per message: decode, infer into the output Images' buffers."""

    def __init__(self, engine: SegmentationEngine, msg: Any):
        self.engine, self.msg = engine, msg
        self.outs = {k: SimpleNamespace(header=None, data=None) for k in OUTPUTS}
        # Per timed call, by what it asked for: "all" four outputs, or "labels" alone.
        self.stages: dict[str, list[dict[str, float]]] = {"all": [], "labels": []}

    def decode(self) -> tuple[np.ndarray, str]:
        from ..image_codec import native_order, to_frame

        order = native_order(self.msg)
        return to_frame(self.msg, order), order

    def run(self, **flags: bool) -> None:
        frame, order = self.decode()
        into = _buffers(self.engine, frame.shape[:2], flags, self.outs)
        _fill_outputs(self.engine.infer(frame, order, into=into, **flags), order, self.outs)

    def run_timed(self, labels_only: bool = False) -> None:
        """All four outputs (or the labels alone), recording each stage's time."""
        flags = {} if labels_only else {"color": True, "overlay": True, "confidence": True}
        start = time.perf_counter()
        frame, order = self.decode()
        decoded = time.perf_counter()
        into = _buffers(self.engine, frame.shape[:2], flags, self.outs)
        result, stages = self.engine.infer_timed(frame, order, into=into, **flags)
        inferred = time.perf_counter()
        _fill_outputs(result, order, self.outs)
        stages["decode"] = (decoded - start) * 1000.0
        # On CUDA the device-to-host copy is part of getting the messages out.
        stages["encode"] = (time.perf_counter() - inferred) * 1000.0 + stages.pop("download", 0)
        self.stages["labels" if labels_only else "all"].append(stages)

    def stream_ms(self, iters: int, progress: bool) -> float:
        """Mean ms per message through infer_many (one frame in flight: the CUDA throughput)."""
        from ..image_codec import native_order, to_frame

        order = native_order(self.msg)
        frames = (to_frame(self.msg, order) for _ in range(iters))
        results = self.engine.infer_many(frames, order, color=True, overlay=True)
        start = time.perf_counter()
        for result in progress_bar(results, total=iters, desc="stream", unit="frame",
                                   file=sys.stderr, disable=not progress, leave=False):
            _fill_outputs(result, order, self.outs)
        sync(self.engine.device_type)
        return (time.perf_counter() - start) * 1000.0 / iters

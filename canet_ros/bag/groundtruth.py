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

"""Ground-truth label images for bag frames: from a topic in the bag or a folder of PNGs.

A topic's label images are matched to frames by header stamp. A folder's PNGs are matched
by name: ``<sec>_<nanosec>.png`` and ``<stamp_ns>.png`` (10 digits or more; either may
start with ``-`` for a stamp before 1970, as extract-frames names it) by stamp,
shorter all-digit names (``000042.png``) by frame index (0-based position of the message
on the input topic, undecodable messages included). In a damaged bag a frame's position
is known only where the salvage reader knows how many messages were lost before it; where
it is not, index-named files are not paired rather than paired with the wrong frame.
A folder's PNGs are read as a dataset's masks/ are (``read_label_image``): a palette PNG
gives its indices, a 1, 2 or 4-bit greyscale PNG its values (0/1 for 1-bit), grey+alpha
its grey; 16-bit ids are read too, as from a mono16 topic.

Once the model's classes are known (``set_classes``), a label image holding an id that is
neither a class nor the ignore id is unusable: the confusion matrix would drop those pixels
without a word and score the rest as if they were the whole frame.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..classes import id_problem
from ..errors import brief
from ..image_codec import ImageCodecError, compressed_to_array, image_to_array
from ..image_files import ImageFileError, grey_channel, read_label_image
from .errors import BagError
from .reader import InputBag, describe_exception, frame_stamp

# A stamp's seconds may be negative: builtin_interfaces/Time.sec is an int32 valid over its
# whole range, and rosbags reads a ROS 1 stamp past 2038 (uint32) into it; extract-frames
# then names the frame "-2094967296_000000000" (divmod keeps the nanoseconds in 0..1e9).
_PAIR = re.compile(r"^(-?\d+)_(\d+)$")
_DIGITS = re.compile(r"^\d+$")
_STAMP_NS = re.compile(r"^-?\d{10,}$")  # <stamp_ns>: 10 digits or more, with its sign


class GroundTruthError(ValueError):
    """One ground-truth image that cannot be used (the frame is scored as having none)."""


def decode_label_message(msg: Any) -> np.ndarray:
    """Decode HxW label ids from a mono8/mono16 Image or a PNG CompressedImage."""
    try:
        if hasattr(msg, "encoding"):
            labels = image_to_array(msg, None)
            kind = f"encoding {brief(msg.encoding)}"
        else:
            if "png" not in str(msg.format).lower():
                raise GroundTruthError(f"compressed ground truth must be PNG (lossless), "
                                       f"got format {brief(msg.format)}")
            labels = compressed_to_array(msg, None)
            kind = f"format {brief(msg.format)}"
    except ImageCodecError as exc:
        raise GroundTruthError(str(exc)) from None
    if labels.ndim != 2:
        raise GroundTruthError(f"ground truth must be a single-channel label image "
                               f"(mono8/mono16), got {kind}")
    return labels


class GroundTruth:
    """Looks up the label image of a frame; counts what it could not use."""

    source: str = ""

    def __init__(self) -> None:
        self.problems: Counter[str] = Counter()
        self.used: set[Any] = set()
        self._classes: tuple[int, int | None] | None = None

    def set_classes(self, num_classes: int, ignore_index: int | None) -> None:
        """Refuse, from now on, label images with ids the model has no class for."""
        self._classes = (int(num_classes), ignore_index)

    def _checked(self, labels: np.ndarray) -> np.ndarray:
        if self._classes is not None:
            problem = id_problem(labels, *self._classes)
            if problem:
                raise GroundTruthError(problem)
        return labels

    def prepare(self) -> None:
        """Heavy preparation; runs in the reader thread so it overlaps the engine start."""

    def lookup(self, position: int | None, stamp: int) -> np.ndarray | None:
        """Return the labels for the frame with header ``stamp`` at ``position``, or None."""
        raise NotImplementedError

    def missing_reason(self, position: int | None) -> str:
        """Why ``lookup`` found nothing, for the per-frame list in the report."""
        return f"no ground truth with this header stamp in the {self.source}"

    def total(self) -> int:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "available": self.total(),
                "unused": max(0, self.total() - len(self.used)),
                "unusable": dict(self.problems)}


class TopicGroundTruth(GroundTruth):
    """Labels from a topic, indexed by header stamp and kept PNG-compressed in memory."""

    def __init__(self, bag: InputBag, topic: str):
        super().__init__()
        self.bag = bag
        self.topic = bag.require_image_topic(topic, "ground-truth topic")
        self.source = f"topic {topic}"
        self._by_stamp: dict[int, bytes | GroundTruthError] = {}

    def prepare(self) -> None:
        # PNG keeps memory small: label maps compress ~20x and decode in about a millisecond.
        for receive_ns, raw, _ in self.bag.messages(self.topic.name):
            try:
                msg = self.bag.deserialize(raw, self.topic.msgtype)
            except Exception as exc:  # a damaged message must not end the run
                self.problems[f"cannot deserialise: {describe_exception(exc)}"] += 1
                continue
            stamp = frame_stamp(msg.header, receive_ns)
            if stamp in self._by_stamp:
                self.problems["duplicate header stamp (first one kept)"] += 1
                continue
            try:
                labels = decode_label_message(msg)
                ok, png = cv2.imencode(".png", np.ascontiguousarray(labels))
                if not ok:
                    raise GroundTruthError("cannot re-encode label image")
            except GroundTruthError as exc:
                # Kept by stamp, so its frame counts as having unusable ground truth.
                self.problems[str(exc)] += 1
                self._by_stamp[stamp] = exc
                continue
            self._by_stamp[stamp] = png.tobytes()

    def lookup(self, position: int | None, stamp: int) -> np.ndarray | None:
        png = self._by_stamp.get(stamp)
        if png is None:
            return None
        if isinstance(png, GroundTruthError):
            raise png
        self.used.add(stamp)
        return self._checked(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED))

    def total(self) -> int:
        return sum(not isinstance(v, GroundTruthError) for v in self._by_stamp.values())


class DirGroundTruth(GroundTruth):
    """Label PNGs in a folder, named by stamp or by frame index."""

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = Path(folder)
        self.source = f"folder {self.folder}"
        if not self.folder.is_dir():
            raise BagError(f"{self.folder}: ground-truth folder does not exist")
        self._by_stamp: dict[int, Path] = {}
        self._by_index: dict[int, Path] = {}
        for path in sorted(self.folder.iterdir()):
            if path.suffix.lower() == ".png" and path.is_file():
                self._add(path)
        if not self._by_stamp and not self._by_index:
            raise BagError(f"{self.folder}: no ground-truth PNGs named <sec>_<nanosec>.png, "
                           f"<stamp_ns>.png or <frame index>.png")

    def _add(self, path: Path) -> None:
        stem = path.stem
        pair = _PAIR.match(stem)
        if pair:
            self._by_stamp[int(pair[1]) * 1_000_000_000 + int(pair[2])] = path
        elif _STAMP_NS.match(stem):
            self._by_stamp[int(stem)] = path
        elif _DIGITS.match(stem):
            self._by_index[int(stem)] = path
        else:
            self.problems["file name is not <sec>_<nanosec>, <stamp_ns> or <index>"] += 1

    def lookup(self, position: int | None, stamp: int) -> np.ndarray | None:
        key: Any = ("stamp", stamp)
        path = self._by_stamp.get(stamp)
        if path is None and position is not None:
            key, path = ("index", position), self._by_index.get(position)
        if path is None:
            return None
        self.used.add(key)
        try:  # as a dataset's masks/ are read: a palette's indices, a 1-bit PNG's 0/1
            labels = read_label_image(path)
        except ImageFileError as exc:  # too many pixels for OpenCV: this frame, not the bag
            raise GroundTruthError(str(exc)) from None
        except MemoryError:
            raise GroundTruthError(f"{path}: not enough memory to decode it") from None
        if labels is None:
            raise GroundTruthError(f"{path}: cannot read PNG")
        ids = grey_channel(labels)
        if ids is None:
            raise GroundTruthError(f"{path}: colour PNG; expected label ids (one channel)")
        return self._checked(ids)

    def missing_reason(self, position: int | None) -> str:
        if position is None and self._by_index:
            return ("no file named by this stamp, and the frame's index is unknown (messages "
                    "of unknown number were lost before it in the damaged bag)")
        return f"no file named by this stamp or by index {position}"

    def total(self) -> int:
        return len(self._by_stamp) + len(self._by_index)

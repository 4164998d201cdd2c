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

"""Frames that calibrate int8 quantization, and a digest that names them.

``$CANET_ROS_CALIBRATION`` points at a folder of images (PNG/JPEG, taken in name
order) or a bag; without it the bundled sample bag's 8 CamVid frames are used (no
dataset needed). The digest hashes the source's files, not decoded pixels, so finding
the cached int8 graph costs no decoding.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .results import EngineError

__all__ = ["CALIBRATION_ENV", "MAX_FRAMES", "CalibrationSource", "calibration_source"]

CALIBRATION_ENV = "CANET_ROS_CALIBRATION"
MAX_FRAMES = 32  # min/max calibration settles within a few scenes; more only costs time
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class CalibrationSource:
    """Where calibration frames come from: a folder of images or a bag."""

    path: Path
    is_bag: bool

    @property
    def files(self) -> list[Path]:
        if not self.is_bag:
            return sorted(p for p in self.path.iterdir()
                          if p.suffix.lower() in _IMAGE_SUFFIXES)[:MAX_FRAMES]
        return sorted(p for p in self.path.rglob("*") if p.is_file()) if self.path.is_dir() \
            else [self.path]

    def digest(self) -> str:
        """SHA-256 over the files' names and bytes (hex, 16 characters)."""
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(path.name.encode() + b"\0")
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def frames(self) -> list[np.ndarray]:
        """Up to :data:`MAX_FRAMES` HxWx3 uint8 RGB frames, always in the same order."""
        frames = self._bag_frames() if self.is_bag else [self._read(p) for p in self.files]
        if not frames:
            raise EngineError(f"{self.path}: no calibration frames found (int8 needs a few "
                              f"images; set {CALIBRATION_ENV} to a folder of them)")
        return frames

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        import cv2

        from ..image_files import ImageFileError, read_image

        try:
            image = read_image(path, cv2.IMREAD_COLOR)
        except ImageFileError as exc:
            raise EngineError(f"calibration image {exc}") from None
        if image is None:
            raise EngineError(f"{path}: calibration image cannot be decoded")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _bag_frames(self) -> list[np.ndarray]:
        # Imported here: only making an int8 graph reads a bag (bag/ sits beside inference/).
        from ..bag.reader import InputBag
        from ..bag.sample import SAMPLE_IMAGE_TOPIC
        from ..image_codec import to_frame

        frames = []
        with InputBag(self.path) as bag:
            topic = (bag.topics()[SAMPLE_IMAGE_TOPIC] if SAMPLE_IMAGE_TOPIC in bag.topics()
                     else bag.select_topic(None))
            for msg in bag.messages(topic.name):
                frames.append(np.array(to_frame(bag.deserialize(msg.raw, topic.msgtype))))
                if len(frames) == MAX_FRAMES:
                    break
        return frames


def calibration_source(spec: str | os.PathLike | None = None) -> CalibrationSource:
    """``spec``, else ``$CANET_ROS_CALIBRATION``, else the bundled sample bag."""
    spec = spec or os.environ.get(CALIBRATION_ENV)
    if not spec:
        from ..bag.sample import SAMPLE_BAG

        return CalibrationSource(SAMPLE_BAG, True)
    path = Path(spec).expanduser()
    if not path.exists():
        raise EngineError(f"{path}: calibration frames not found ({CALIBRATION_ENV})")
    images = path.is_dir() and any(p.suffix.lower() in _IMAGE_SUFFIXES for p in path.iterdir())
    return CalibrationSource(path, not images)

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

"""One line of text on a picture, in a TrueType font where there is one.

OpenCV's Hershey fonts cover ASCII (OpenCV 5 adds some Latin and Cyrillic letters) and draw
"?" for the rest, yet class names come from a user's classes.yaml: "Straße", "車". Pillow
draws TrueType text and matplotlib ships DejaVu Sans, both install requirements; without
either, the text is OpenCV's as before.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERSHEY = cv2.FONT_HERSHEY_SIMPLEX
# DejaVu Sans at 30 px per unit of Hershey scale has the Hershey capitals' height
# (about 11 px at scale 0.5), so either font fills the same rows.
_PX_PER_SCALE = 30.0

# (text, (x, baseline y), colour in the picture's own channel order)
TextItem = tuple[str, tuple[int, int], tuple[int, int, int]]


def _font_sources() -> list[str]:
    """List font files to try, matplotlib's own DejaVu Sans first (the same glyphs everywhere)."""
    sources = []
    try:
        import matplotlib

        bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if bundled.is_file():  # Debian's package links it to fonts-dejavu-core
            sources.append(str(bundled))
    except Exception:  # no matplotlib, or a broken one: the text must still be drawn
        pass
    sources.append("DejaVuSans.ttf")  # Pillow looks in the system's font folders
    return sources


@functools.lru_cache(maxsize=16)
def _truetype(px: int) -> Any | None:
    try:
        from PIL import ImageFont
    except ImportError:
        return None
    for source in _font_sources():
        try:
            return ImageFont.truetype(source, px)
        except (OSError, ImportError):  # not found, or a Pillow built without FreeType
            continue
    return None


class TextPainter:
    """Measures and draws single lines of text at one size, as ``text_painter`` chose."""

    def __init__(self, scale: float, font: Any | None):
        self.scale = scale
        self.font = font

    @property
    def truetype(self) -> bool:
        return self.font is not None

    def width(self, text: str) -> int:
        """Advance width of ``text`` in pixels."""
        text = one_line(text)
        if self.font is not None:
            return math.ceil(self.font.getlength(text))
        return cv2.getTextSize(text, HERSHEY, self.scale, 1)[0][0]

    def draw(self, image: np.ndarray, items: Sequence[TextItem]) -> np.ndarray:
        """Return ``image`` (H, W, 3 uint8) with each item's text left of x, on baseline y."""
        if self.font is None:
            for text, origin, color in items:
                cv2.putText(image, one_line(text), origin, HERSHEY, self.scale, color, 1,
                            cv2.LINE_AA)
            return image
        from PIL import Image, ImageDraw

        # Channel order never matters here: the colours are given in the picture's order.
        canvas = Image.fromarray(np.ascontiguousarray(image), "RGB")
        pen = ImageDraw.Draw(canvas)
        for text, origin, color in items:
            pen.text(origin, one_line(text), fill=tuple(color), font=self.font, anchor="ls")
        return np.asarray(canvas).copy()


def one_line(text: str) -> str:
    """Return ``text`` with its line breaks as spaces: a legend row is one line.

    classes.yaml accepts any name without ':', and Pillow refuses to lay out a single
    line holding a newline ("raqm_layout() failed"); OpenCV draws it as "?".
    """
    return " ".join(text.splitlines())


def text_painter(scale: float) -> TextPainter:
    """Painter for text as tall as OpenCV's Hershey simplex font at ``scale``."""
    return TextPainter(scale, _truetype(max(6, round(scale * _PX_PER_SCALE))))

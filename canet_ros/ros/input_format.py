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

"""What the camera sends: frame size and encoding, said when first seen and when changed.

A camera reconfigured at run time (another resolution, rgb8 instead of bgr8) changes
what the outputs look like without a word otherwise; and a frame whose aspect ratio is
not the network's is stretched to it, which costs accuracy on a model trained at another
shape. Pure Python; the node calls :meth:`InputFormat.see` from its worker thread only.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

# Beyond this relative difference of width/height ratios the stretch is worth a note:
# 480x360 (4:3) vs 640x480 is none, vs 1920x1080 (16:9) is 33 % (16:9 is 4/3 of 4:3).
ASPECT_TOLERANCE = 0.05
Format = Tuple[int, int, str]  # width, height, encoding (a CompressedImage's format)


def _text(fmt: Format) -> str:
    return f"{fmt[0]}x{fmt[1]} {fmt[2]}"


class InputFormat:
    """Remembers the last input format; says what is news about a new frame's."""

    def __init__(self, topic: str, network: Tuple[int, int]) -> None:
        self._topic, self._network = topic, network
        self.current: Optional[Format] = None
        self._stretch_noted = False

    def see(self, width: int, height: int, encoding: str) -> List[str]:
        """Return the INFO lines this frame's format calls for (none while it is unchanged)."""
        fmt = (int(width), int(height), str(encoding))
        if fmt == self.current:
            return []
        if self.current is None:
            lines = [f"input: {_text(fmt)} frames on {self._topic}"]
        else:
            lines = [f"input now {_text(fmt)} (was {_text(self.current)})"]
        self.current = fmt
        stretch = self._stretch(fmt)
        if stretch is not None:
            lines.append(stretch)
        return lines

    def _stretch(self, fmt: Format) -> Optional[str]:
        width, height = fmt[0], fmt[1]
        net_w, net_h = self._network
        if self._stretch_noted or width <= 0 or height <= 0:
            return None
        ratio = (width / height) / (net_w / net_h)
        if abs(ratio - 1.0) <= ASPECT_TOLERANCE:
            return None
        self._stretch_noted = True  # once: a camera's shape does not change back and forth
        return (f"input {width}x{height} (aspect {width / height:.2f}) differs from the "
                f"network's {net_w}x{net_h} (aspect {net_w / net_h:.2f}) by "
                f"{abs(ratio - 1.0):.0%}: frames are stretched to it, which may cost accuracy; "
                "resolution:=WxH of the input's aspect avoids that")

    def key_values(self) -> List[Tuple[str, str]]:
        if self.current is None:
            return [("input_size", "n/a"), ("input_encoding", "n/a")]
        return [("input_size", f"{self.current[0]}x{self.current[1]}"),
                ("input_encoding", self.current[2])]

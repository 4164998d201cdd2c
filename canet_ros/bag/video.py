"""An MP4 of the overlays with a small legend of class colours."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .errors import BagError

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_legend(names: Sequence[str], colors_rgb: np.ndarray, frame_height: int) -> np.ndarray:
    """Render a BGR swatch + name list sized for frames ``frame_height`` tall."""
    scale = max(0.3, min(0.5, frame_height / 900))
    row = max(10, int(round(26 * scale / 0.5)))
    swatch = row - 4
    width = swatch + 8 + max(cv2.getTextSize(n, _FONT, scale, 1)[0][0] for n in names) + 6
    legend = np.zeros((row * len(names) + 4, width, 3), np.uint8)
    for i, (name, rgb) in enumerate(zip(names, colors_rgb, strict=True)):
        y = 2 + i * row
        bgr = tuple(int(v) for v in rgb[::-1])
        cv2.rectangle(legend, (2, y + 2), (2 + swatch, y + 2 + swatch), bgr, -1)
        cv2.putText(legend, name, (swatch + 8, y + row - 5), _FONT, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return legend


class OverlayVideo:
    """Writes overlay frames to ``path`` (mp4v); the size is fixed by the first frame."""

    def __init__(self, path: Path, fps: float, names: Sequence[str], colors_rgb: np.ndarray):
        self.path = path
        self.fps = float(min(max(fps, 1.0), 60.0))
        self.names = list(names)
        self.colors = np.asarray(colors_rgb, np.uint8).reshape(-1, 3)
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._legend: np.ndarray | None = None
        self.frames = 0

    def _start(self, width: int, height: int) -> None:
        # mp4v wants even sizes; odd ones are stretched by one pixel rather than refused.
        self._size = (width + width % 2, height + height % 2)
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                 self._size)
        if not writer.isOpened():
            raise BagError(f"{self.path}: OpenCV cannot write an mp4v video here")
        self._writer = writer
        legend = render_legend(self.names, self.colors, self._size[1])
        # A legend taller or wider than the frame is cut rather than scaled to unreadability.
        self._legend = legend[: self._size[1] // 2 * 2, : self._size[0] // 2]

    def write(self, overlay: np.ndarray, order: str) -> None:
        frame = overlay if order == "bgr" else cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
        if self._writer is None:
            self._start(frame.shape[1], frame.shape[0])
        assert self._size is not None and self._legend is not None and self._writer is not None
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        else:
            frame = frame.copy()
        h, w = self._legend.shape[:2]
        corner = frame[:h, :w]
        # Darken behind the text so it reads on any overlay, but keep the scene visible.
        mask = self._legend.any(axis=2, keepdims=True)
        frame[:h, :w] = np.where(mask, self._legend, (corner * 0.4).astype(np.uint8))
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

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

"""A browser-playable video of the overlays, with a small legend of class colours.

PyAV (``pip install av``, or the ``video`` extra) ships FFmpeg with its encoders: H.264 in
MP4 where its build has libx264, else VP9 or VP8 in WebM. Without PyAV the video is
written by OpenCV as MPEG-4 Part 2 (``mp4v``), which desktop players open but browsers do
not; the run says so.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..draw_text import text_painter
from .errors import BagError

_ID_GREY = (170, 170, 170)  # the ids a shade dimmer than the names they number
_OUTLINE = (128, 128, 128)  # round each swatch: black or dark classes on the black strip
_LIGHT_OUTLINE = (255, 255, 255)  # 67+ from every colour that _OUTLINE is too close to
# A legend name past this many characters is cut (ADE20K's run past 100): the strip is
# as wide as its longest name, and libx264 refuses frames tens of thousands wide.
LEGEND_NAME_CHARS = 24
LEGEND_MIN_WIDTH = 640


@dataclass(frozen=True)
class VideoFormat:
    codec: str  # encoder name (PyAV / FFmpeg, or "mp4v" for OpenCV)
    suffix: str
    label: str  # what the report and docs call it
    browser: bool


# In order of preference: every browser plays H.264 MP4; VP9 / VP8 WebM play in all but
# some Safari versions.
_PYAV_FORMATS = (VideoFormat("libx264", ".mp4", "H.264 in MP4", True),
                 VideoFormat("libvpx-vp9", ".webm", "VP9 in WebM", True),
                 VideoFormat("libvpx", ".webm", "VP8 in WebM", True))
FALLBACK = VideoFormat("mp4v", ".mp4", "MPEG-4 Part 2 (mp4v) in MP4", False)
NO_FRAMES = "no frames to encode"  # no frame was segmented, so there is no video file
FALLBACK_NOTE = ("no browser-playable encoder: PyAV is not installed (pip install av, or "
                 "pip install canet_ros[video]); overlay.mp4 is MPEG-4 Part 2, which desktop "
                 "players open but browsers do not")


def choose_format() -> tuple[VideoFormat, str | None]:
    """Return the best encoder here, and a note for the user when it is the fallback."""
    try:
        import av
    except ImportError:
        return FALLBACK, FALLBACK_NOTE
    for fmt in _PYAV_FORMATS:
        try:
            av.codec.Codec(fmt.codec, "w")
        except Exception:  # PyAV raises its own error types for a missing encoder
            continue
        return fmt, None
    return FALLBACK, FALLBACK_NOTE.replace("PyAV is not installed", "this PyAV build has "
                                           "neither libx264 nor libvpx")


def _legend_name(name: str, truetype: bool) -> str:
    """``name`` cut to ``LEGEND_NAME_CHARS`` with an ellipsis (the id beside it stays whole)."""
    if len(name) <= LEGEND_NAME_CHARS:
        return name
    mark = "\u2026" if truetype else "..."  # Hershey has no ellipsis glyph
    return name[:LEGEND_NAME_CHARS - len(mark)].rstrip() + mark


def legend_scale(frame_height: int) -> float:
    """Return the legend's text scale beside a frame ``frame_height`` tall (before crowding).

    Up to 480 px it is what it always was (at most 0.5, about 11 px capitals); past that it
    grows with the frame, so the strip keeps its share of the picture: capped at 0.5, a 4K
    frame's text was 11 px of 2160, unreadable once the video is scaled to a screen.
    """
    return max(0.3, min(0.5, frame_height / 900), frame_height / 960)


def render_legend(names: Sequence[str], colors_rgb: np.ndarray, frame_height: int,
                  max_width: int | None = None) -> np.ndarray:
    """Render a BGR swatch + class id + name list at most ``frame_height`` tall.

    Rows shrink to fit down to a readable minimum; past that the names go into columns.
    Text, swatches and spacing grow with ``frame_height`` past 480 px (``legend_scale``).
    Each swatch has a grey outline (white around greys): a black class colour would vanish
    on the black strip, a grey one into a grey outline.
    Names are drawn in a TrueType font (``draw_text``), cut with an ellipsis past
    ``LEGEND_NAME_CHARS``; the id, the value the class has in the label masks, tells
    classes apart even where the font lacks a name's glyphs or names were cut alike.
    With ``max_width``, the columns that fit in it hold the first classes and the last
    row says how many more there are; where not even one column fits (a tall, narrow
    frame), the text grows less, down to its size beside a 480 px frame, and past that
    the names are cut shorter.
    """
    lay = _fitted_layout(names, frame_height, max_width)
    shown, col_w, per_column = lay.shown, lay.col_w, lay.per_column
    columns = -(-len(names) // per_column)
    more = None
    if max_width is not None and col_w * columns > max_width:
        # As wide as the longest such note can be (the count has at most these digits).
        col_w = max(col_w, lay.note_w)
        columns = max(1, max_width // col_w)
        keep = max(0, columns * per_column - 1)  # the last row says what is left out
        more = f"+{len(names) - keep} more in legend.png"
        shown = shown[:keep]
    rows = min(len(names), per_column)
    legend = np.zeros((lay.row * rows + 4, col_w * columns, 3), np.uint8)
    painter, margin, row = lay.painter, lay.margin, lay.row
    texts = []
    for i, (name, rgb) in enumerate(zip(shown, colors_rgb[:len(shown)], strict=True)):
        x, y = (i // per_column) * col_w, 2 + (i % per_column) * row
        _swatch(legend, (x + margin, y + margin), lay.swatch, rgb, max(1, margin // 2))
        left, baseline = x + lay.swatch + lay.gap, y + row - lay.drop
        texts.append((str(i), (left + lay.id_w - painter.width(str(i)), baseline), _ID_GREY))
        texts.append((name, (left + lay.id_w + lay.space, baseline), (255, 255, 255)))
    if more:
        k = len(shown)
        texts.append((more, ((k // per_column) * col_w + 2 * margin,
                             2 + (k % per_column) * row + row - lay.drop), (255, 255, 255)))
    legend = painter.draw(legend, texts)
    return legend if max_width is None else legend[:, :max_width]


@dataclass
class _Layout:
    """Sizes, in pixels, of one legend at one text scale."""

    row: int
    per_column: int
    margin: int  # around the swatch
    gap: int  # swatch to id
    space: int  # id to name
    drop: int  # baseline above the row's bottom
    swatch: int
    painter: Any
    shown: list[str]
    id_w: int
    col_w: int
    note_w: int  # "+N more in legend.png", with the gap after it


def _layout(names: Sequence[str], frame_height: int, scale: float) -> _Layout:
    row = max(10, int(round(26 * scale / 0.5)))
    row = max(12, min(row, (frame_height - 4) // max(len(names), 1)))
    # Text no taller than its row: many classes in a short frame take small rows.
    scale = min(scale, max(0.3, row * 0.5 / 26))
    unit = max(1.0, scale / 0.5)  # the spacing at 480 px, times this past it
    margin, gap, space, drop = (int(round(k * unit)) for k in (2, 8, 6, 5))
    painter = text_painter(scale)
    shown = [_legend_name(n, painter.truetype) for n in names]
    id_w = max((painter.width(str(i)) for i in range(len(names))), default=0)
    text_w = max((painter.width(n) for n in shown), default=0)
    swatch = row - 2 * margin
    return _Layout(row, max(1, (frame_height - 4) // row), margin, gap, space, drop, swatch,
                   painter, shown, id_w, swatch + gap + id_w + 2 * space + text_w,
                   painter.width(f"+{len(names)} more in legend.png") + gap)


def _fitted_layout(names: Sequence[str], frame_height: int, max_width: int | None
                   ) -> _Layout:
    """Return the layout at ``legend_scale``, or smaller where one column is too wide.

    Too wide, the strip was cut mid-letter and said "+-6 more" outside itself. The scale
    shrinks no further than a 480 px frame's; past that the names are cut shorter.
    """
    scale, floor = legend_scale(frame_height), legend_scale(min(frame_height, 480))
    for _ in range(12):  # text widths round to pixels: a few tries, each 5 % or more
        lay = _layout(names, frame_height, scale)
        if max_width is None or scale <= floor:
            break
        need = lay.col_w
        if lay.col_w * -(-len(names) // lay.per_column) > max_width:
            need = max(need, lay.note_w)  # some classes are left out: the note must show
        if need <= max_width:
            return lay
        scale = max(floor, min(0.95 * scale, scale * max_width / need))
    if max_width is not None and lay.col_w > max_width:
        fixed = lay.col_w - max((lay.painter.width(n) for n in lay.shown), default=0)
        lay.shown = [_fit_name(lay.painter, n, max_width - fixed) for n in lay.shown]
        lay.col_w = max_width
    return lay


def _fit_name(painter: Any, name: str, width: int) -> str:
    """Return ``name``, cut shorter with an ellipsis until ``painter`` draws it in ``width``."""
    if painter.width(name) <= width:
        return name
    mark = "\u2026" if painter.truetype else "..."
    base = name.removesuffix(mark)
    while base and painter.width(base + mark) > width:
        base = base[:-1].rstrip()
    return base + mark


def _swatch(legend: np.ndarray, corner: tuple[int, int], size: int, rgb: np.ndarray,
            outline: int) -> None:
    """Draw one class's colour square, ``outline`` px of grey around it, left of its name."""
    x, y = corner
    # A swatch near the grey (CamVid's Sky is that grey) gets a white ring instead.
    ring = _OUTLINE if np.abs(rgb.astype(int) - _OUTLINE[0]).max() >= 60 else _LIGHT_OUTLINE
    cv2.rectangle(legend, (x - outline, y - outline), (x + size + outline, y + size + outline),
                  ring, -1)
    cv2.rectangle(legend, (x, y), (x + size, y + size), tuple(int(v) for v in rgb[::-1]), -1)


class _PyavWriter:
    def __init__(self, path: Path, codec: str, fps: Fraction, size: tuple[int, int]):
        import av

        options = {"movflags": "+faststart"} if path.suffix == ".mp4" else {}
        self._container = av.open(str(path), "w", options=options)
        self._stream = self._container.add_stream(codec, rate=fps)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"  # what browsers decode
        self._av = av

    def write(self, bgr: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(bgr, format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()


class _OpencvWriter:
    def __init__(self, path: Path, fps: Fraction, size: tuple[int, int]):
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                       size)
        if not self._writer.isOpened():
            raise BagError(f"{path}: OpenCV cannot write an mp4v video here")

    def write(self, bgr: np.ndarray) -> None:
        self._writer.write(bgr)

    def close(self) -> None:
        self._writer.release()


class OverlayVideo:
    """Writes overlay frames to OUTDIR/overlay.<suffix>, with the class legend beside them.

    The size is fixed by the first frame; the legend is a strip right of the picture. The
    frame rate is the camera's, from the receive times of the first ``PROBE_FRAMES``
    frames (held back until then): not the bag's, whose other topics may span more time.

    A failing encoder never costs the output bag: the error is kept in ``error`` and the
    remaining frames are not encoded.
    """

    PROBE_FRAMES = 8
    DEFAULT_FPS = 10.0  # one frame, or frames that all carry one time

    def __init__(self, outdir: Path, names: Sequence[str], colors_rgb: np.ndarray,
                 fmt: VideoFormat | None = None):
        self.format, self.note = (fmt, None) if fmt else choose_format()
        self.path = outdir / f"overlay{self.format.suffix}"
        self.fps = Fraction(self.DEFAULT_FPS)
        self.names = list(names)
        self.colors = np.asarray(colors_rgb, np.uint8).reshape(-1, 3)
        self._writer: Any = None
        self._probe: list[tuple[np.ndarray, int]] = []
        self._size: tuple[int, int] | None = None
        self._legend: np.ndarray | None = None
        self._canvas: np.ndarray | None = None
        self.frames = 0
        self.error: str | None = None

    def _start(self, width: int, height: int) -> None:
        # 4:2:0 video needs even sizes; odd ones are stretched by one pixel.
        self._size = (width + width % 2, height + height % 2)
        # The legend is a strip right of the picture, so it hides none of the scene.
        # At most twice the picture's width (640 px for a small one): a class count whose
        # columns need more shows the first classes and how many more legend.png lists.
        legend = render_legend(self.names, self.colors, self._size[1],
                               max(2 * self._size[0], LEGEND_MIN_WIDTH))
        self._legend = legend[: self._size[1]]
        strip = self._legend.shape[1] + self._legend.shape[1] % 2
        video_size = (self._size[0] + strip, self._size[1])
        if self.format.codec == FALLBACK.codec:
            self._writer = _OpencvWriter(self.path, self.fps, video_size)
        else:
            self._writer = _PyavWriter(self.path, self.format.codec, self.fps, video_size)
        self._canvas = np.zeros((video_size[1], video_size[0], 3), np.uint8)

    def write(self, overlay: np.ndarray, order: str, receive_ns: int) -> None:
        if self.error is not None:
            return
        try:
            frame = overlay if order == "bgr" else cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
            if self._writer is not None:
                self._encode(frame)
                return
            self._probe.append((frame.copy(), int(receive_ns)))
            if len(self._probe) == self.PROBE_FRAMES:
                self._begin()
        except Exception as exc:  # a video must never cost the bag
            self.error = f"{self.path.name}: {str(exc).strip() or type(exc).__name__}"

    def _begin(self) -> None:
        """Set the rate from the held-back frames, open the encoder and write them."""
        probe, self._probe = self._probe, []
        times = [t for _, t in probe]
        span_s = (max(times) - min(times)) / 1e9
        if len(times) > 1 and span_s > 0:
            rate = max((len(times) - 1) / span_s, 0.1)
            self.fps = Fraction(rate).limit_denominator(1001)
        first = probe[0][0]
        self._start(first.shape[1], first.shape[0])
        for frame, _ in probe:
            self._encode(frame)

    def _encode(self, frame: np.ndarray) -> None:
        assert self._size is not None and self._legend is not None
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        width, height = self._size
        canvas = self._canvas
        canvas[:, :width] = frame
        h, w = self._legend.shape[:2]
        canvas[:h, width:width + w] = self._legend
        self._writer.write(canvas)
        self.frames += 1

    def close(self) -> None:
        if self._probe and self.error is None:  # a short (or interrupted) run: fewer frames
            try:
                self._begin()
            except Exception as exc:
                self.error = f"{self.path.name}: {str(exc).strip() or type(exc).__name__}"
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception as exc:
                self.error = self.error or f"{self.path.name}: {exc}"
        if self.frames == 0:
            # Nothing to play: an encoder that failed on its first frame may have left a
            # header-only file, which the report must not point at.
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass

    def describe(self) -> dict[str, Any]:
        """Describe the video for the report; ``path`` is None when no frame was written."""
        # A failed encoder leaves no video (or a cut-off one) that anything could play.
        error = self.error or (None if self.frames else NO_FRAMES)
        return {"path": str(self.path.resolve()) if self.frames else None,
                "format": self.format.label,
                "browser_playable": self.format.browser and error is None,
                "fps": float(self.fps), "frames": self.frames, "note": self.note,
                "error": error}

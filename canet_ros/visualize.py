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

"""PNG figures for evaluation reports (matplotlib with the Agg backend, no display needed)."""
from __future__ import annotations

import contextlib
import math
import os
import textwrap
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .image_files import save_image
from .warning_filters import PROCESS_LOCK

PathLike = Union[str, os.PathLike]

# Class names come from a user's classes.yaml (ADE20K's run past 100 characters): past
# this many characters a chart shows a name cut with an ellipsis, so the layout holds.
BAR_LABEL_CHARS = 36
MATRIX_LABEL_CHARS = 24
ELLIPSIS = "\u2026"
# Confusion matrix: at most this many inches a side (2400 px at the 120 dpi it is saved
# at), whatever the class count; a cell of 0.55 in where there is room for it.
MATRIX_MAX_INCHES = 20.0
MATRIX_CELL_INCHES = 0.55
MATRIX_NUMBERS_MIN_CELL = 0.3  # inches: below this the per-cell percentages overlap
MATRIX_LABEL_POINTS = (5.0, 9.0)  # tick label sizes; below the smallest, every k-th class
SAVE_DPI = 120
# Per-class IoU chart: a title is wrapped rather than widen the chart past this.
BAR_MAX_INCHES = MATRIX_MAX_INCHES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: robots and CI have no display
    import matplotlib.pyplot as plt

    return plt


def colorize(label: np.ndarray, palette: np.ndarray, ignore_index: Optional[int] = None
             ) -> np.ndarray:
    """Map HxW class ids to HxWx3 uint8 RGB; ignored and unknown ids are black."""
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = palette
    ids = np.asarray(label).astype(np.int64)
    out = lut[np.clip(ids, 0, 255)]
    bad = (ids < 0) | (ids >= len(palette))
    if ignore_index is not None:
        bad |= ids == ignore_index
    out[bad] = 0
    return out


def side_by_side(frame: np.ndarray, gt: np.ndarray, pred: np.ndarray, palette: np.ndarray,
                 ignore_index: Optional[int] = None) -> np.ndarray:
    """Tile frame | ground truth | prediction, all at the ground truth's size (RGB uint8)."""
    h, w = gt.shape[:2]
    if frame.shape[:2] != (h, w):
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([frame, gap, colorize(gt, palette, ignore_index), gap,
                           colorize(pred, palette, ignore_index)], axis=1)


def save_rgb(image: np.ndarray, path: PathLike) -> Path:
    """Write an RGB picture; the OSError of one that cannot be written carries the reason."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))  # ENOSPC, ENAMETOOLONG, ...
    return path


def short_labels(names: Sequence[str], limit: int,
                 ids: Optional[Sequence[int]] = None,
                 drawable: Optional[Callable[[str], bool]] = None) -> List[str]:
    """Return ``names`` cut to ``limit`` characters with an ellipsis, for chart labels.

    Cut names that then read alike, and names ``drawable`` says the font cannot draw
    (CJK names in DejaVu Sans are rows of identical boxes), are told apart by their class
    id (``ids``), or where no ids are known by a number in parentheses in chart order.
    """
    labels = [n if len(n) <= limit else n[:limit - 1].rstrip() + ELLIPSIS for n in names]
    counts = Counter(labels)
    seen: Counter = Counter()
    out = []
    for i, label in enumerate(labels):
        if counts[label] > 1 or (drawable is not None and not drawable(names[i])):
            seen[label] += 1
            number = seen[label] if counts[label] > 1 else i + 1
            label = f"{ids[i]}: {label}" if ids is not None else f"{label} ({number})"
        out.append(label)
    return out


def font_draws() -> Callable[[str], bool]:
    """Return a test of whether matplotlib's text font, or a fallback it has, draws a name."""
    from matplotlib import font_manager

    paths = []
    for family in font_manager.FontProperties().get_family():  # rcParams' list, in order
        with contextlib.suppress(ValueError):  # not installed: matplotlib skips it too
            paths.append(font_manager.findfont(font_manager.FontProperties(family=family),
                                               fallback_to_default=False))
    chars: set = set()
    for path in paths or [font_manager.findfont(font_manager.FontProperties())]:
        chars.update(font_manager.get_font(path).get_charmap())
    return lambda name: all(ord(c) in chars for c in name)


@contextlib.contextmanager
def _glyph_warnings_quiet() -> Iterator[None]:
    # matplotlib warns once per missing glyph and text drawn (~30 for a chart of three CJK
    # names); the labels carry the class id for those names, which says all there is.
    with PROCESS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from font", UserWarning)
        yield


def _label_bars(ax, bars, values: Sequence[float]) -> None:
    """Write each value at its bar's end: outside to the right, or inside where no room is left.

    A label placed right of a bar that ends near 100 % would run past the axis or be pushed
    back onto the bar; such bars carry their label inside, right-aligned, in white.
    Each label sits on a box of its background's colour, drawn over the mean line: the
    line ran through the labels near the mean ("65|3", every "0.0" of a low-mean chart).
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_data = ax.transData.inverted()
    for bar, v in zip(bars, values, strict=True):
        y = bar.get_y() + bar.get_height() / 2
        label = ax.text(v + 1, y, f"{v:.1f}", va="center", ha="left", fontsize=8,
                        bbox=_label_box("white"))
        box = label.get_window_extent(renderer)
        right = to_data.transform((box.x1, box.y0))[0]
        if right > ax.get_xlim()[1]:
            label.set_position((v - 1, y))
            label.set_horizontalalignment("right")
            label.set_color("white")
            label.set_bbox(_label_box(bar.get_facecolor()))


def _label_box(color: Any) -> dict:
    """Return a borderless box of ``color`` to put behind a value label, over the mean line."""
    return {"boxstyle": "square,pad=0.15", "facecolor": color, "edgecolor": "none"}


def _extent_inches(fig, texts) -> Tuple[float, float]:
    """Largest width and height, in inches, of ``texts`` as drawn on ``fig``."""
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts if t.get_text()]
    if not boxes:
        return 0.0, 0.0
    return (max(b.width for b in boxes) / fig.dpi, max(b.height for b in boxes) / fig.dpi)


def iou_bar_figure(per_class: Mapping[str, float], title: str = "Per-class IoU",
                   class_names: Optional[Sequence[str]] = None) -> Any:
    """Horizontal bars of IoU (fractions in [0, 1], shown as %), mean as a dashed line.

    ``class_names``, the whole class list, gives the ids shown where cut names collide.
    """
    from matplotlib.transforms import ScaledTranslation

    plt = _pyplot()
    names = list(per_class)
    values = [100.0 * float(per_class[n]) for n in names]
    index = {n: i for i, n in enumerate(class_names or ())}
    ids = [index[n] for n in names] if all(n in index for n in names) else None
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(names), 4) + 1.6))
    bars = ax.barh(range(len(names)), values, color="#4477aa")
    ax.set_yticks(range(len(names)),
                  labels=short_labels(names, BAR_LABEL_CHARS, ids, font_draws()))
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    # Centred on the figure, not the axes: the row labels push the axes right, and a
    # title centred over them ran off the right edge, as the confusion matrix's did.
    heading = fig.suptitle(title, fontsize=ax.title.get_fontsize())
    _wrap_to_width(fig, heading, BAR_MAX_INCHES - 0.4)
    label_w, _ = _extent_inches(fig, ax.get_yticklabels())
    title_w, title_h = _extent_inches(fig, [heading])
    lines = heading.get_text().count("\n") + 1
    # Room for the names left of the bars; a long title sets the width on its own, and
    # each line past its first takes height from the bars unless the figure grows.
    width, height = fig.get_size_inches()
    height += title_h * (lines - 1) / lines
    fig.set_size_inches(max(width, label_w + 4.5, title_w + 0.4), height)
    # A fixed 0.1 in from the top: tight_layout keeps the title's height free there, but
    # suptitle's 2 % of a 100-class chart's height put the title down over the bars.
    heading.set_y(1 - 0.1 / height)
    if values:
        mean = float(np.mean(values))
        ax.axvline(mean, color="#cc3311", linestyle="--", label=f"mean {mean:.1f}")
        # Below the axis, right of its label, a fixed distance away (a fraction of the
        # axis would put it off the figure for a tall chart); inside the axis it would
        # cover the ends of the bottom bars.
        below = ax.transAxes + ScaledTranslation(0, -22 / 72, fig.dpi_scale_trans)
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.0), bbox_transform=below,
                  frameon=False, fontsize=8, borderaxespad=0)
    fig.tight_layout()
    _label_bars(ax, bars, values)
    return fig


def save_iou_bar_chart(per_class: Mapping[str, float], path: PathLike,
                       title: str = "Per-class IoU",
                       class_names: Optional[Sequence[str]] = None) -> Path:
    """``iou_bar_figure`` saved as a PNG."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _glyph_warnings_quiet():
        fig = iou_bar_figure(per_class, title, class_names)
        fig.savefig(path, dpi=SAVE_DPI)
    plt.close(fig)
    return path


def _label_inches(fig, labels: Sequence[str], points: float) -> Tuple[float, float]:
    """Widest label's width and a 60-degree label's height, in inches, at ``points``.

    Measured with one probe text, not tick labels: matplotlib makes a costly tick object
    per label, and these sizes are needed before the ticks are made.
    """
    probe = fig.text(0, 0, "", fontsize=points)
    renderer = fig.canvas.get_renderer()
    width = height = 0.0
    for label in labels:
        probe.set_text(label)
        box = probe.get_window_extent(renderer)
        width, height = max(width, box.width), max(height, box.height)
    probe.remove()
    slant = math.radians(60)
    return (width / fig.dpi,
            (width * math.sin(slant) + height * math.cos(slant)) / fig.dpi)


def _wrap_to_width(fig, text, inches: float) -> None:
    """Re-wrap ``text``'s lines at fewer characters until it is at most ``inches`` wide."""
    lines = text.get_text().splitlines()
    chars = max((len(line) for line in lines), default=0)
    while chars > 8 and _extent_inches(fig, [text])[0] > inches:
        chars = int(chars * 0.9)
        text.set_text("\n".join(textwrap.fill(line, chars) or line for line in lines))


def _matrix_layout(fig, labels: Sequence[str], title_w: float, title_h: float
                   ) -> Tuple[float, float, int, Tuple[float, float]]:
    """(cell inches, label points, label every k-th class, figure size) for the size cap."""
    n = max(len(labels), 1)
    small, large = MATRIX_LABEL_POINTS
    # Labels scale with their font size: measured once, at the largest.
    label_w, label_h = _label_inches(fig, labels, large)
    cell, points = MATRIX_CELL_INCHES, large
    for _ in range(2):  # smaller cells take smaller labels, which leave more room
        margin_w = label_w * points / large + 2.0  # + axis label, colour bar, padding
        margin_h = label_h * points / large + title_h + 1.1
        cell = min(MATRIX_CELL_INCHES, (MATRIX_MAX_INCHES - max(margin_w, margin_h)) / n)
        points = max(small, min(large, 0.8 * cell * 72))
    step = max(1, math.ceil(1.2 * points / (cell * 72)))
    size = (min(MATRIX_MAX_INCHES, max(n * cell + margin_w, title_w + 0.4)),
            min(MATRIX_MAX_INCHES, n * cell + margin_h))
    return cell, points, step, size


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str],
                            title: str = "Confusion matrix (rows: ground truth, % of row)"
                            ) -> Any:
    """Row-normalised heat map of a (C, C) count matrix, rows = ground truth.

    At most ``MATRIX_MAX_INCHES`` a side for any class count; past the count where they
    could be read, the per-cell percentages are left out and only every k-th class is
    labelled.
    """
    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(class_names)
    labels = short_labels(class_names, MATRIX_LABEL_CHARS, list(range(n)), font_draws())
    fig, ax = plt.subplots()
    # Nearest: each cell one flat colour, whatever the pixels per cell.
    im = ax.imshow(frac * 100, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    # Centred on the figure, not the matrix: the row labels push the matrix right, and a
    # title centred over a small one ran off the right edge ("... % of ro").
    heading = fig.suptitle(title, fontsize=10)
    _wrap_to_width(fig, heading, MATRIX_MAX_INCHES - 0.4)
    title_w, title_h = _extent_inches(fig, [heading])
    cell, points, step, size = _matrix_layout(fig, labels, title_w, title_h)
    fig.set_size_inches(*size)
    where = list(range(0, n, step))
    ax.set_xticks(where, labels=[labels[i] for i in where], rotation=60, ha="right",
                  rotation_mode="anchor", fontsize=points)
    ax.set_yticks(where, labels=[labels[i] for i in where], fontsize=points)
    if cell >= MATRIX_NUMBERS_MIN_CELL:
        for i, j in zip(*np.nonzero(frac >= 0.005), strict=True):
            ax.text(j, i, f"{100 * frac[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def save_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: PathLike,
                          title: str = "Confusion matrix (rows: ground truth, % of row)"
                          ) -> Path:
    """``confusion_matrix_figure`` saved as a PNG."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _glyph_warnings_quiet():
        fig = confusion_matrix_figure(matrix, class_names, title)
        fig.savefig(path, dpi=SAVE_DPI)
    plt.close(fig)
    return path

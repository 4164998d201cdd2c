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

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from .image_files import write_image

PathLike = Union[str, os.PathLike]


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not write_image(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write image")
    return path


def _label_bars(ax, bars, values: Sequence[float]) -> None:
    """Write each value at its bar's end: outside to the right, or inside where no room is left.

    A label placed right of a bar that ends near 100 % would run past the axis or be pushed
    back onto the bar; such bars carry their label inside, right-aligned, in white.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_data = ax.transData.inverted()
    for bar, v in zip(bars, values, strict=True):
        y = bar.get_y() + bar.get_height() / 2
        label = ax.text(v + 1, y, f"{v:.1f}", va="center", ha="left", fontsize=8)
        box = label.get_window_extent(renderer)
        right = to_data.transform((box.x1, box.y0))[0]
        if right > ax.get_xlim()[1]:
            label.set_position((v - 1, y))
            label.set_horizontalalignment("right")
            label.set_color("white")


def iou_bar_figure(per_class: Mapping[str, float], title: str = "Per-class IoU") -> Any:
    """Horizontal bars of IoU (fractions in [0, 1], shown as %), mean as a dashed line."""
    plt = _pyplot()
    names = list(per_class)
    values = [100.0 * float(per_class[n]) for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(names), 4) + 1.2))
    bars = ax.barh(range(len(names)), values, color="#4477aa")
    ax.set_yticks(range(len(names)), labels=names)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    ax.set_title(title)
    if values:
        mean = float(np.mean(values))
        ax.axvline(mean, color="#cc3311", linestyle="--", label=f"mean {mean:.1f}")
        # Below the axis: inside it, the legend would cover the ends of the bottom bars.
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, -0.14), frameon=False, fontsize=8)
    fig.tight_layout()
    _label_bars(ax, bars, values)
    return fig


def save_iou_bar_chart(per_class: Mapping[str, float], path: PathLike,
                       title: str = "Per-class IoU") -> Path:
    """``iou_bar_figure`` saved as a PNG."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = iou_bar_figure(per_class, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def save_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: PathLike,
                          title: str = "Confusion matrix (rows: ground truth, % of row)"
                          ) -> Path:
    """Row-normalised heat map of a (C, C) count matrix, rows = ground truth."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(0.55 * n + 3, 0.55 * n + 2))
    im = ax.imshow(frac * 100, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(n), labels=class_names, rotation=60, ha="right")
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title, fontsize=10)
    for i in range(n):
        for j in range(n):
            if frac[i, j] >= 0.005:
                ax.text(j, i, f"{100 * frac[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

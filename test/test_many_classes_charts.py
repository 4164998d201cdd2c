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

"""The IoU chart and the confusion matrix with many classes and long class names.

A confusion matrix sized per class grew to 17070x17190 px at 255 classes (11.7 GB to
draw, more than Pillow opens); a 125-character ADE20K name made tight_layout give up and
cut every name at the figure's edge.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.text import Text
from PIL import Image

from canet_ros import visualize

# ADE20K class names (objectInfo150), the longest among them.
ADE = ["wall", "building, edifice", "sky", "floor, flooring", "tree",
       "chest of drawers, chest, bureau, dresser", "traffic light, traffic signal, stoplight",
       "kitchen island", "computer, computing machine, computing device, data processor, "
       "electronic computer, information processing system", "swivel chair"]
LONG = "chest of drawers, chest, bureau, dresser, commode, tallboy"  # 57 characters


def _texts_outside(fig) -> list[str]:
    """Every drawn text whose extent leaves the canvas (1 px of rounding allowed)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    outside = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            outside.append(f"{text.get_text()!r} at {box.bounds}")
    return outside


def _built(monkeypatch):
    """Keep the figure ``save_confusion_matrix`` draws, to map cells to its pixels."""
    kept = []
    build = visualize.confusion_matrix_figure

    def spy(*args, **kwargs):
        kept.append(build(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(visualize, "confusion_matrix_figure", spy)
    return kept


def _cell_rgb(fig, image: np.ndarray, col: float, row: float) -> np.ndarray:
    """RGB of the saved PNG at data point (col, row) of the matrix axes."""
    x, y = fig.axes[0].transData.transform((col, row)) * visualize.SAVE_DPI / fig.dpi
    return image[int(image.shape[0] - y), int(x)].astype(int)


def test_iou_chart_with_a_long_name_keeps_every_text_on_the_canvas():
    per_class = {n: 0.1 * i for i, n in enumerate(ADE)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Tight layout not applied" among them
        fig = visualize.iou_bar_figure(per_class, "ADE20K val: mIoU 45.0%")
    assert _texts_outside(fig) == []
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "wall" and labels[8].startswith("computer, computing")
    assert labels[8].endswith("\u2026") and len(labels[8]) < len(ADE[8])
    legend = fig.axes[0].get_legend()
    assert legend is not None and legend.get_texts()[0].get_text() == "mean 45.0"


def test_iou_chart_of_many_classes_keeps_the_mean_on_the_canvas():
    fig = visualize.iou_bar_figure({f"class {i}": i / 60 for i in range(60)})
    assert _texts_outside(fig) == []
    assert fig.axes[0].get_legend().get_texts()[0].get_text().startswith("mean ")


@pytest.mark.parametrize("names", [["wall", "sky", LONG], ADE])
def test_confusion_matrix_with_long_names_keeps_every_text_on_the_canvas(names):
    matrix = np.eye(len(names)) * 5 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = visualize.confusion_matrix_figure(matrix, names)
    assert _texts_outside(fig) == []


def test_names_cut_alike_are_told_apart():
    names = [LONG + " one", LONG + " two", "sky"]
    fig = visualize.confusion_matrix_figure(np.eye(3), names)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(set(labels)) == 3 and labels[2] == "sky"
    bars = visualize.iou_bar_figure({n: 0.5 for n in names})
    labels = [t.get_text() for t in bars.axes[0].get_yticklabels()]
    assert len(set(labels)) == 3 and labels[2] == "sky"


def test_cell_colour_follows_its_value(tmp_path, monkeypatch):
    # Row i puts a share of its pixels on the diagonal: 0, 10, 35, 60, 85, 100 %.
    shares = [0, 10, 35, 60, 85, 100]
    n = len(shares)
    matrix = np.zeros((n, n))
    for i, share in enumerate(shares):
        matrix[i, i] = share
        matrix[i, (i + 1) % n] += 100 - share
    kept = _built(monkeypatch)
    path = visualize.save_confusion_matrix(matrix, [f"c{i}" for i in range(n)],
                                           tmp_path / "cm.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    fig = kept[0]
    # Off the centre, where the cell's percentage is written.
    got = [_cell_rgb(fig, image, i + 0.3, i + 0.3) for i in range(n)]
    blues = colormaps["Blues"]
    for share, rgb in zip(shares, got, strict=True):
        expected = np.round(np.array(blues(share / 100)[:3]) * 255)
        assert np.abs(rgb - expected).max() <= 3, (share, rgb, expected)
    luminance = [float(np.dot(rgb, (0.299, 0.587, 0.114))) for rgb in got]
    assert all(a > b for a, b in zip(luminance, luminance[1:], strict=False)), luminance


def test_255_class_matrix_stays_small_and_shows_its_cells(tmp_path, monkeypatch):
    n = 255
    target = [(7 * i + 3) % n for i in range(n)]  # every row on one column, all different
    matrix = np.zeros((n, n), np.int64)
    matrix[np.arange(n), target] = 40
    kept = _built(monkeypatch)
    path = visualize.save_confusion_matrix(matrix, [f"class {i}" for i in range(n)],
                                           tmp_path / "cm.png")
    with Image.open(path) as png:
        width, height = png.size
        image = np.asarray(png.convert("RGB"))
    assert width <= 2500 and height <= 2500  # 17070 x 17190 before
    fig = kept[0]
    dark = np.round(np.array(colormaps["Blues"](1.0)[:3]) * 255)
    light = np.round(np.array(colormaps["Blues"](0.0)[:3]) * 255)
    for i in range(0, n, 17):
        hit = _cell_rgb(fig, image, target[i], i)
        beside = _cell_rgb(fig, image, (target[i] + 1) % n, i)
        assert np.abs(hit - dark).max() <= 3 and np.abs(beside - light).max() <= 3, i

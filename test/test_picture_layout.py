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

"""Geometry of the pictures evaluate --save-vis and segment-bag draw, measured, not eyed.

The confusion matrix's title ran off the right edge for one or two classes; the IoU
chart's mean line struck through the value labels near it; the video legend's text was
11 px tall beside a 4K frame; a black class's swatch vanished on the black legend strip.
"""
from __future__ import annotations

import numpy as np
import pytest

from canet_ros import visualize

TITLE = "folder val (4 frames)\nconfusion matrix (rows: ground truth, % of row)"
LONG = "chest of drawers, chest, bureau, dresser, commode"


def _inside(box, fig) -> bool:
    """Whether a window extent lies on ``fig``'s canvas (1 px of rounding allowed)."""
    width, height = fig.canvas.get_width_height()
    return box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1


def _title(fig, first_line: str):
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_text"))
             if t.get_visible() and t.get_text().startswith(first_line)]
    assert len(texts) == 1, [t.get_text() for t in texts]
    return texts[0]


@pytest.mark.parametrize("n", [1, 2, 3, 11, 100])
@pytest.mark.parametrize("long_name", [False, True])
def test_confusion_matrix_title_is_whole_inside_the_picture(n, long_name):
    names = [f"c{i}" for i in range(n)]
    if long_name:
        names[0] = LONG
    fig = visualize.confusion_matrix_figure(np.eye(n) * 9 + 1, names, TITLE)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = _title(fig, "folder val")
    assert title.get_text() == TITLE  # both lines, neither cut nor re-wrapped
    box = title.get_window_extent(renderer)
    assert _inside(box, fig), (box.bounds, fig.canvas.get_width_height())
    matrix = fig.axes[0].get_window_extent(renderer)
    assert box.y0 >= matrix.y1  # above the matrix, not over it


def test_a_title_wider_than_the_largest_picture_is_wrapped_inside_it():
    title = "a long chart title " * 40
    fig = visualize.confusion_matrix_figure(np.eye(2), ["road", "sky"], title)
    fig.canvas.draw()
    heading = _title(fig, "a long chart title")
    assert _inside(heading.get_window_extent(fig.canvas.get_renderer()), fig)
    assert heading.get_text().split() == title.split()  # every word kept, in order


def _reddish(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the mean line's red (#cc3311), antialiased edges included."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return (r - g > 60) & (r - b > 60)


@pytest.mark.parametrize("values", [
    [0.62, 0.653, 0.70, 0.66, 0.64, 0.63],  # mean 65.0: "65.3" read "65|3"
    [0.0] * 10 + [0.18, 0.01],  # mean 1.6 through every "0.0"
    [0.99, 0.97, 0.98, 0.96, 0.99, 0.95],  # labels inside the bars, white on blue
])
def test_mean_line_is_not_drawn_over_the_value_labels(values):
    per_class = {f"class {i}": v for i, v in enumerate(values)}
    fig = visualize.iou_bar_figure(per_class, "chart")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    height = image.shape[0]
    ax = fig.axes[0]
    labels = list(ax.texts)
    assert [t.get_text() for t in labels] == [f"{100 * v:.1f}" for v in values]
    mean_x = ax.transData.transform((100 * float(np.mean(values)), 0))[0]
    crossed = 0
    for label in labels:
        box = label.get_window_extent(renderer)
        crossed += box.x0 <= mean_x <= box.x1
        rows = slice(int(np.ceil(height - box.y1)), int(height - box.y0))
        cols = slice(int(np.ceil(box.x0)), int(box.x1))
        assert not _reddish(image[rows, cols]).any(), label.get_text()
    assert crossed  # the line does meet a label: the case is the one that was struck

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

"""Class names the chart font cannot draw: the class id beside them, and no warning flood.

In DejaVu Sans (matplotlib's default, and all it has on many machines) CJK names are rows
of identical boxes: a reviewer saw '自転車' and '歩行者' drawn alike in the IoU chart and the
confusion matrix, with ~30 "Glyph ... missing from font" warnings per chart. The font is
pinned to DejaVu Sans here, which matplotlib ships and which has no CJK glyphs.
"""
from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest

from canet_ros import visualize

NAMES = ["Road", "自転車", "Bâtiment", "歩行者", "Тротуар"]  # DejaVu draws Latin and Cyrillic


@pytest.fixture(autouse=True)
def dejavu_only():
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        yield


def tick_texts(labels):
    return [label.get_text() for label in labels]


@pytest.mark.filterwarnings("ignore:Glyph")  # the figure alone: save_* silences them
def test_the_iou_chart_puts_the_class_id_before_names_its_font_lacks():
    per_class = {name: 0.1 * (i + 1) for i, name in enumerate(NAMES)}
    fig = visualize.iou_bar_figure(per_class, class_names=NAMES)
    assert tick_texts(fig.axes[0].get_yticklabels()) == [
        "Road", "1: 自転車", "Bâtiment", "3: 歩行者", "Тротуар"]


@pytest.mark.filterwarnings("ignore:Glyph")
def test_the_confusion_matrix_puts_the_class_id_before_names_its_font_lacks():
    fig = visualize.confusion_matrix_figure(np.eye(len(NAMES)) * 9 + 1, NAMES)
    expected = ["Road", "1: 自転車", "Bâtiment", "3: 歩行者", "Тротуар"]
    assert tick_texts(fig.axes[0].get_yticklabels()) == expected
    assert tick_texts(fig.axes[0].get_xticklabels()) == expected


def test_saving_the_charts_says_nothing_of_missing_glyphs_and_keeps_other_warnings(tmp_path):
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        visualize.save_iou_bar_chart({n: 0.5 for n in NAMES}, tmp_path / "iou.png",
                                     title="caméra_日本", class_names=NAMES)
        visualize.save_confusion_matrix(np.eye(len(NAMES)), NAMES, tmp_path / "cm.png")
        warnings.warn("Glyph 1 (x) missing from font(s) Mine.", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["Glyph 1 (x) missing from font(s) Mine."]
    assert warnings.filters == before
    assert (tmp_path / "iou.png").stat().st_size and (tmp_path / "cm.png").stat().st_size

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

"""legend.png and the video legend: class names any classes.yaml may hold, and class ids.

OpenCV's Hershey font draws "?" for what it lacks (OpenCV 4: every non-ASCII letter;
OpenCV 5: still Greek, arrows, CJK), so two such names came out alike.
"""
from __future__ import annotations

import sys
from itertools import combinations

import cv2
import numpy as np
import pytest

from canet_ros import draw_text
from canet_ros.bag.video import render_legend

# Pairs of names, one of which the installed OpenCV draws as the same "?" marks.
PAIRS = [("Fußgänger", "Fußgönger"), ("Σ-Weg", "Ω-Weg")]
BLUE = (0, 128, 255)  # RGB of every swatch below: no text pixel is this colour


def _hershey(text: str) -> np.ndarray:
    image = np.zeros((40, 400, 3), np.uint8)
    cv2.putText(image, text, (4, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return image


def _question_pair() -> tuple[str, str]:
    """Two different names this OpenCV draws pixel for pixel alike."""
    return next(p for p in PAIRS if np.array_equal(_hershey(p[0]), _hershey(p[1])))


def _text_rows(legend: np.ndarray) -> list[np.ndarray]:
    """Each row's text, right of its swatch (found by colour; one column of rows)."""
    hit = (legend == BLUE[::-1]).all(axis=2)
    ys, right = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0)).max()
    tops = [ys[0]] + [y for before, y in zip(ys[:-1], ys[1:], strict=True) if y != before + 1]
    pitch = tops[1] - tops[0]
    return [legend[t - 2:t - 2 + pitch, right + 1:] for t in tops]


def _legend(names: list[str], height: int = 480) -> np.ndarray:
    legend = render_legend(names, np.array([BLUE] * len(names), np.uint8), height)
    assert legend.shape[0] <= height
    assert not legend[:, -2:].any(), "text runs past the legend's right edge"
    return legend


@pytest.fixture
def no_truetype(monkeypatch):
    """As where Pillow is not installed: OpenCV draws the text."""
    draw_text._truetype.cache_clear()
    monkeypatch.setitem(sys.modules, "PIL", None)
    yield
    draw_text._truetype.cache_clear()


def test_names_opencv_draws_alike_are_drawn_apart():
    pytest.importorskip("PIL.ImageFont")
    pytest.importorskip("matplotlib")
    first, second = _question_pair()
    assert draw_text.text_painter(0.5).truetype
    a = _text_rows(_legend(["Straße", "Gehweg", first]))
    b = _text_rows(_legend(["Straße", "Gehweg", second]))
    assert a[2].shape != b[2].shape or not np.array_equal(a[2], b[2])
    assert a[2].max() == 255  # white text drawn


def test_each_row_carries_its_class_id():
    # Twelve rows of one name and one colour: only the ids can tell them apart.
    rows = _text_rows(_legend(["Gehweg"] * 12))
    assert len(rows) == 12
    for (i, a), (j, b) in combinations(enumerate(rows), 2):
        assert not np.array_equal(a, b), (i, j)


def test_names_no_font_has_are_told_apart_by_their_ids():
    # OpenCV draws both as "?"; DejaVu Sans has neither glyph either.
    assert np.array_equal(_hershey("車"), _hershey("人"))
    first, second = _text_rows(_legend(["車", "人"]))
    assert not np.array_equal(first, second)


def test_without_pillow_opencv_draws_the_names_and_ids(no_truetype):
    assert not draw_text.text_painter(0.5).truetype
    first, second = _question_pair()
    a = _text_rows(_legend(["Straße", "Gehweg", first]))
    b = _text_rows(_legend(["Straße", "Gehweg", second]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # Hershey's "?"
    assert a[0].max() > 200 and a[0].shape == a[1].shape
    rows = _text_rows(_legend(["Gehweg"] * 12))
    assert all(not np.array_equal(x, y) for x, y in combinations(rows, 2))


@pytest.mark.parametrize("height", [120, 240, 480])
def test_many_classes_fit_the_frame_height_in_columns(height):
    names = [f"Fußgänger {i}" for i in range(30)]
    legend = _legend(names, height)
    assert legend.shape[0] <= height and legend.shape[1] > 0


@pytest.mark.parametrize("truetype", [True, False])
def test_a_name_with_a_line_break_is_drawn_on_one_line(truetype, request):
    # classes.yaml accepts it; Pillow's layout refused it and the legend and video were lost.
    if not truetype:
        request.getfixturevalue("no_truetype")
    broken = _text_rows(_legend(["side\nwalk", "road\r\nway"]))
    plain = _text_rows(_legend(["side walk", "road way"]))
    assert len(broken) == len(plain) == 2
    assert all(np.array_equal(a, b) for a, b in zip(broken, plain, strict=True))

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

The confusion matrix's title ran off the right edge for one or two classes, the IoU
chart's for long names at any class count; the IoU chart's mean line struck through the
value labels near it; the video legend's text was 11 px tall beside a 4K frame; a black
class's swatch vanished on the black legend strip.
"""
from __future__ import annotations

import numpy as np
import pytest

from canet_ros import visualize

TITLE = "folder val (4 frames)\nconfusion matrix (rows: ground truth, % of row)"
LONG = "chest of drawers, chest, bureau, dresser, commode"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    visualize._pyplot().close("all")  # tall charts of 255 classes add up


def _inside(box, fig) -> bool:
    """Return whether a window extent lies on ``fig``'s canvas (1 px rounding allowed)."""
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


# The title evaluate --include gave seven CamVid frames: its last "_" was cut off.
IOU_TITLE = ("camvid val 0016E5_07959,0016E5_07961,0016E5_07963,0016E5_07965,0016E5_07967,"
             "0016E5_07969,0016E5_07971 (7 frames): mIoU 66.4%")


@pytest.mark.filterwarnings("ignore:Glyph")  # the figure alone: save_* silences them
@pytest.mark.parametrize("n", [1, 2, 11, 100, 255])
@pytest.mark.parametrize("name", ["c{}", LONG + " {}", "Gehweg–Bürgersteig_{}", "歩行者{}"])
def test_iou_chart_title_is_whole_inside_the_picture(n, name):
    per_class = {name.format(i): i / max(n - 1, 1) for i in range(n)}
    fig = visualize.iou_bar_figure(per_class, IOU_TITLE)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = _title(fig, "camvid val")
    assert title.get_text() == IOU_TITLE  # neither cut nor wrapped: there is room for it
    box = title.get_window_extent(renderer)
    assert _inside(box, fig), (box.bounds, fig.canvas.get_width_height())
    assert box.y0 >= fig.axes[0].get_window_extent(renderer).y1  # above the bars


def test_an_iou_chart_title_wider_than_the_largest_picture_is_wrapped_inside_it():
    title = "a long chart title " * 40
    fig = visualize.iou_bar_figure({"road": 0.5, "sky": 0.9}, title)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    heading = _title(fig, "a long chart title")
    box = heading.get_window_extent(renderer)
    assert _inside(box, fig), (box.bounds, fig.canvas.get_width_height())
    assert fig.get_size_inches()[0] <= visualize.BAR_MAX_INCHES
    assert heading.get_text().split() == title.split()  # every word kept, in order
    assert box.y0 >= fig.axes[0].get_window_extent(renderer).y1


def _reddish(rgb: np.ndarray) -> np.ndarray:
    """Return a mask of the mean line's red (#cc3311), antialiased edges included."""
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
        patch = image[rows, cols]
        assert not _reddish(patch).any(), label.get_text()
        assert _legible(patch, label.get_bbox_patch().get_facecolor()), label.get_text()
    assert crossed  # the line does meet a label: the case is the one that was struck


def _legible(patch: np.ndarray, box_rgba) -> bool:
    """Return whether ``patch``, a label's extent, shows glyphs that stand out from its box.

    Much of it is the box's colour, and its digits (12-26 % of it, measured; at least
    5 % asked) differ from that colour by half the range or more: a white label on its
    white box drew blank.
    """
    box = np.round(np.asarray(box_rgba[:3]) * 255).astype(int)
    off = np.abs(patch.astype(int) - box).max(axis=-1)
    return (off <= 8).mean() >= 0.3 and (off >= 128).mean() >= 0.05


CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
          "Car", "Pedestrian", "Bicyclist"]
SWATCH = (0, 128, 255)  # RGB of the swatches below: no text pixel is this colour


def _swatches(picture: np.ndarray, rgb) -> list[tuple[int, int, int, int]]:
    """Return (top, bottom, left, right), inclusive, of each ``rgb`` swatch (BGR picture).

    Only the first column of legend rows: a swatch of a later column may share their rows.
    """
    hit = (picture == np.array(rgb[::-1], np.uint8)).all(axis=2)
    xs = np.flatnonzero(hit.any(axis=0))
    gaps = np.flatnonzero(np.diff(xs) > 1)
    if len(gaps):
        hit[:, xs[gaps[0]] + 1:] = False
    ys = np.flatnonzero(hit.any(axis=1))
    runs = np.split(ys, np.flatnonzero(np.diff(ys) > 1) + 1) if len(ys) else []
    out = []
    for run in runs:
        xs = np.flatnonzero(hit[run].any(axis=0))
        out.append((int(run[0]), int(run[-1]), int(xs[0]), int(xs[-1])))
    return out


def _text_height(legend: np.ndarray) -> int:
    """Return the pixel rows the first row's light text spans (white names, grey ids)."""
    top, bottom = _swatches(legend, SWATCH)[:2]
    band = legend[top[0]:bottom[0], top[3] + 1:]
    light = (band.min(axis=2) > 150).any(axis=1)
    return int(np.flatnonzero(light)[-1] - np.flatnonzero(light)[0] + 1)


class _Recorder:
    """Stands in for the encoder: keeps the canvases OverlayVideo would encode."""

    frames: list = []

    def __init__(self, path, fps, size):
        _Recorder.frames = []

    def write(self, bgr):
        _Recorder.frames.append(bgr.copy())

    def close(self):
        pass


def _video_legend(monkeypatch, tmp_path, colors, width: int, height: int) -> np.ndarray:
    """Return the legend strip of the one frame a ``width`` x ``height`` video encodes."""
    from canet_ros.bag import video

    monkeypatch.setattr(video, "_OpencvWriter", _Recorder)
    clip = video.OverlayVideo(tmp_path, CAMVID, np.asarray(colors, np.uint8), video.FALLBACK)
    clip.write(np.full((height, width, 3), 90, np.uint8), "bgr", 0)
    clip.close()
    assert clip.error is None and len(_Recorder.frames) == 1
    return _Recorder.frames[0][:, width:]


@pytest.mark.parametrize("height", [480, 1080, 2160])
def test_legend_text_grows_with_the_frame(height):
    from canet_ros.bag.video import render_legend

    pytest.importorskip("PIL.ImageFont")
    width = height * 16 // 9
    legend = render_legend(CAMVID, np.array([SWATCH] * 11, np.uint8), height, 2 * width)
    base = render_legend(CAMVID, np.array([SWATCH] * 11, np.uint8), 480, 1706)
    # As today beside a 480 px frame: 26 px rows, 11 of them, 2 px above and below.
    assert base.shape[0] == 11 * 26 + 4
    text, text_480 = _text_height(legend), _text_height(base)
    assert text / height >= 0.025  # 11 px of 2160 (0.5 %) before
    assert 0.8 * height / 480 <= text / text_480 <= 1.2 * height / 480
    swatches = _swatches(legend, SWATCH)
    assert len(swatches) == 11
    side = swatches[0][1] - swatches[0][0]
    assert side == swatches[0][3] - swatches[0][2]  # square
    assert 0.8 * height / 480 <= side / (26 - 4) <= 1.2 * height / 480
    # The strip's rules hold: at most the frame's height and twice its width.
    assert legend.shape[0] <= height and legend.shape[1] <= 2 * width


def test_video_legend_beside_a_4k_frame_is_readable(monkeypatch, tmp_path):
    pytest.importorskip("PIL.ImageFont")
    legend = _video_legend(monkeypatch, tmp_path, [SWATCH] * 11, 3840, 2160)
    assert _text_height(legend) >= 0.025 * 2160


def test_many_classes_beside_a_4k_frame_keep_to_the_strip_rules():
    from canet_ros.bag.video import render_legend

    names = [f"a rather long class name {i}" for i in range(300)]
    legend = render_legend(names, np.array([SWATCH] * 300, np.uint8), 2160, 7680)
    assert legend.shape[0] <= 2160 and legend.shape[1] <= 7680
    assert not legend[:, -2:].any(), "text runs past the strip's right edge"


def _swatch_outlined(picture: np.ndarray, rgb=(0, 0, 0)) -> None:
    """Check the ``rgb`` swatch between two SWATCH ones: its colour inside, a ring unlike both.

    The ring must stand out from the strip's black and from the swatch itself, or a black
    class vanishes on the strip and a grey one (CamVid's Sky) into its outline.
    """
    above, below = _swatches(picture, SWATCH)[:2]
    pitch = (below[0] - above[0]) // 2
    top, bottom, left, right = (above[0] + pitch, above[1] + pitch, above[2], above[3])
    inside = picture[top:bottom + 1, left:right + 1].astype(int)
    assert (inside == np.array(rgb[::-1])).all()  # the class's own colour (BGR picture)
    background = picture[top, -1]  # the strip's black, right of every name
    ring = np.concatenate([picture[top - 1, left - 1:right + 2],
                           picture[bottom + 1, left - 1:right + 2],
                           picture[top:bottom + 1, left - 1],
                           picture[top:bottom + 1, right + 1]]).astype(int)
    assert (np.abs(ring - background).max(axis=1) >= 60).all()
    assert (np.abs(ring - np.array(rgb[::-1])).max(axis=1) >= 60).all()


COLORS = [SWATCH, (0, 0, 0), SWATCH] + [SWATCH] * 8  # class 1 black, as "unlabeled"


@pytest.mark.parametrize("height", [120, 480, 2160])
def test_a_black_swatch_has_an_outline_in_the_legend(height):
    from canet_ros.bag.video import render_legend

    _swatch_outlined(render_legend(CAMVID, np.array(COLORS, np.uint8), height))


def test_a_black_swatch_has_an_outline_in_legend_png(tmp_path):
    import cv2

    from canet_ros.bag.report import LEGEND, _write_legend

    report = {"class_names": CAMVID, "palette": [list(c) for c in COLORS]}
    assert _write_legend(report, tmp_path) == LEGEND
    _swatch_outlined(cv2.imread(str(tmp_path / LEGEND)))


def test_a_black_swatch_has_an_outline_in_the_video_legend(monkeypatch, tmp_path):
    _swatch_outlined(_video_legend(monkeypatch, tmp_path, COLORS, 640, 480))


# CamVid's Sky is (128, 128, 128), the outline's grey: its swatch was a plain grey block.
# White too: a ring as light as the swatch would swallow it.
@pytest.mark.parametrize("grey", [(128, 128, 128), (140, 120, 128), (69, 69, 69),
                                  (187, 187, 187), (187, 69, 128), (255, 255, 255)])
@pytest.mark.parametrize("height", [120, 2160])
def test_a_grey_swatch_stands_out_from_its_outline(grey, height):
    from canet_ros.bag.video import render_legend

    colors = [SWATCH, grey, SWATCH] + [SWATCH] * 8
    _swatch_outlined(render_legend(CAMVID, np.array(colors, np.uint8), height), grey)


# Beside a frame narrower than about a quarter of its height, one column of the grown
# legend was wider than the strip: names were cut mid-letter and it said "+-6 more".
NARROW = CAMVID[:10] + ["a_really_long_class_name_beyond_24"]


@pytest.mark.parametrize("width, height", [(300, 2160), (300, 4320), (500, 2160)])
def test_legend_beside_a_tall_narrow_frame_shows_every_name_whole(width, height, monkeypatch):
    from canet_ros.bag.video import LEGEND_MIN_WIDTH, _legend_name, render_legend

    pytest.importorskip("PIL.ImageFont")
    max_width = max(2 * width, LEGEND_MIN_WIDTH)  # as OverlayVideo asks for it
    colors = np.array([SWATCH] * len(NARROW), np.uint8)
    painted = _Painted(monkeypatch)
    legend = render_legend(NARROW, colors, height, max_width)
    painter, _, items = painted.calls[-1]
    drawn = {text for text, _, _ in items}
    # The text shrinks to fit (down to its 480 px size) before any name is cut further
    # than the legend's own LEGEND_NAME_CHARS.
    assert {_legend_name(n, painter.truetype) for n in NARROW} <= drawn, drawn
    assert legend.shape[0] <= height and legend.shape[1] <= max_width
    assert not legend[:, -2:].any(), "a name runs past the strip's right edge"
    assert len(_swatches(legend, SWATCH)) == len(NARROW)  # every class, none left out
    # Smaller than beside a wider frame of this height, but never below the 480 px size.
    base = render_legend(NARROW, colors, 480, max_width)
    assert _text_height(base) < _text_height(legend)


class _Painted:
    """Wraps ``text_painter``: keeps the strip width and the texts each legend draws."""

    def __init__(self, monkeypatch):
        from canet_ros.bag import video

        self.calls: list = []
        real = video.text_painter

        def painter(scale):
            made = real(scale)
            draw = made.draw

            def recorded(image, items):
                self.calls.append((made, image.shape[1], list(items)))
                return draw(image, items)
            made.draw = recorded
            return made
        monkeypatch.setattr(video, "text_painter", painter)


@pytest.mark.parametrize("count, height, max_width", [
    (11, 2160, 640),  # one column wider than the strip: "+-6 more", drawn past it
    (11, 4320, 640),
    (300, 2160, 140),  # two columns needed, less than one fits: the note says 122 more
    (300, 480, 1706),  # as before: a 4:3 ... 16:9 frame's strip holds what fits
])
def test_legend_note_counts_what_the_strip_leaves_out(monkeypatch, count, height, max_width):
    from canet_ros.bag.video import render_legend

    names = NARROW if count == 11 else [f"a rather long class name {i}" for i in range(count)]
    painted = _Painted(monkeypatch)
    legend = render_legend(names, np.array([SWATCH] * count, np.uint8), height, max_width)
    painter, strip, items = painted.calls[-1]
    notes = [t for t, _, _ in items if t.endswith(" more in legend.png")]
    drawn = (len(items) - len(notes)) // 2  # an id and a name per class shown
    if drawn == count:
        assert notes == []
    else:
        assert notes == [f"+{count - drawn} more in legend.png"] and count - drawn > 0
    assert legend.shape[1] == min(strip, max_width)
    for text, (x, _), _ in items:  # every text whole inside the strip, not sliced off it
        assert x + painter.width(text) <= legend.shape[1], text

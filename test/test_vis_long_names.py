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

"""canet evaluate --save-vis with frame names of 255 bytes, and pictures that cannot be written."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import ClassSet
from canet_ros.cli import main
from canet_ros.evaluation import evaluate_checkpoint
from canet_ros.models import build_canet

NAME_MAX = 255  # bytes in a file name on Linux file systems
CLASSES = ClassSet("two", ("road", "car"), ((128, 64, 128), (0, 0, 142)), 255)
# Four stems whose file names (stem + ".png") are 255 bytes: legal, as `dataset check` says.
# Two differ only in their last character; one is two-byte UTF-8 characters.
LONG = ["x" * 250 + "a", "x" * 250 + "b", "y" * 251, "\u00e9" * 125 + "z"]


def _dataset(root: Path, stems: list) -> Path:
    rng = np.random.default_rng(5)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text("names: [road, car]\ncolors: [[128, 64, 128], [0, 0, 142]]"
                                       "\nignore_index: 255\nsplit: {val_every: 2}\n")
    for stem in stems:
        assert cv2.imwrite(str(root / "images" / f"{stem}.png"),
                           rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
        assert cv2.imwrite(str(root / "masks" / f"{stem}.png"),
                           rng.integers(0, 2, (32, 48), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "ck.pt",
                           build_canet("mobilenetv2", 2).eval(),
                           build_metadata("mobilenetv2", CLASSES, input_size=(48, 32)), half=False)


def _expected_name(index: int, stem: str) -> str:
    """segment-bag's rule (docs/segment_bag.md): the start, '-', 8 hex digits of the SHA-256."""
    full = f"{index:03d}_{stem}"
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    start = full
    while len((start + "-" + digest + ".png").encode()) > NAME_MAX:
        start = start[:-1]
    return f"{start}-{digest}.png"


def test_pictures_of_frames_named_with_255_bytes_are_shortened(tmp_path, checkpoint):
    root = _dataset(tmp_path / "long", LONG)
    plain = evaluate_checkpoint(str(checkpoint), "folder", str(root), "all")
    vis = tmp_path / "vis"
    result = evaluate_checkpoint(str(checkpoint), "folder", str(root), "all",
                                 save_vis=str(vis), vis_count=len(LONG))
    assert (result["miou"], result["per_class"]) == (plain["miou"], plain["per_class"])
    names = sorted(p.name for p in vis.glob("0*.png"))
    assert names == sorted(_expected_name(i, s) for i, s in enumerate(sorted(LONG)))
    assert all(len(n.encode()) <= NAME_MAX for n in names) and len(set(names)) == len(LONG)
    # Each picture shows its own frame: frame | truth | prediction, the frame on the left.
    for i, stem in enumerate(sorted(LONG)):
        side = cv2.imread(str(vis / _expected_name(i, stem)))
        frame = cv2.imread(str(root / "images" / f"{stem}.png"))
        assert np.array_equal(side[:, :48], frame), stem


def test_a_picture_that_cannot_be_written_keeps_the_scores(tmp_path, checkpoint, caplog):
    root = _dataset(tmp_path / "short", ["f0", "f1", "f2"])
    plain = evaluate_checkpoint(str(checkpoint), "folder", str(root), "all")
    vis = tmp_path / "vis"
    (vis / "000_f0.png").mkdir(parents=True)  # the first picture's name is taken by a folder
    with caplog.at_level(logging.WARNING):
        result = evaluate_checkpoint(str(checkpoint), "folder", str(root), "all",
                                     save_vis=str(vis), vis_count=3)
    assert (result["miou"], result["per_class"]) == (plain["miou"], plain["per_class"])
    assert (vis / "001_f1.png").is_file() and (vis / "002_f2.png").is_file()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [f"--save-vis: {vis / '000_f0.png'} not written (Is a directory); the "
                      f"scores are complete"]
    assert result["vis_pictures"] == {"written": 2, "not_written": 1}


def test_the_closing_line_says_how_many_pictures_were_written(tmp_path, checkpoint, capsys,
                                                              monkeypatch):
    from canet_ros import visualize

    root = _dataset(tmp_path / "short", ["f0", "f1", "f2"])
    args = ["evaluate", "--checkpoint", str(checkpoint), "--dataset", "folder", "--data-root",
            str(root), "--split", "all", "--vis-count", "3", "--save-vis"]

    def closing_line(vis: Path) -> str:
        assert main([*args, str(vis)]) == 0
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert closing_line(tmp_path / "all") == f"visualisations written to {tmp_path / 'all'}"
    vis = tmp_path / "some"
    (vis / "001_f1.png").mkdir(parents=True)  # one of the three names is taken by a folder
    assert closing_line(vis) == (f"visualisations written to {vis}: 2 of 3 frame pictures "
                                 f"(see the warnings above)")

    def no_chart(*args, **kwargs):
        raise RuntimeError("no chart today")

    monkeypatch.setattr(visualize, "save_confusion_matrix", no_chart)
    assert closing_line(vis) == (f"visualisations written to {vis}: 2 of 3 frame pictures, "
                                 f"charts not drawn (see the warnings above)")


def test_what_a_full_disk_left_of_pictures_and_charts_is_removed(tmp_path, checkpoint,
                                                                 monkeypatch):
    # A full disk cuts a PNG short; an older run's file of that name would stay beside a
    # warning that this run's was not written.
    from canet_ros import visualize

    def cut_short(write):
        def writing(*args):
            path = next(a for a in args if isinstance(a, Path))
            path.write_bytes(b"\x89PNG\r\n")  # what got out before the disk filled
            raise OSError(28, "No space left on device")
        return writing

    root = _dataset(tmp_path / "short", ["f0", "f1"])
    vis = tmp_path / "vis"
    vis.mkdir()
    for name in ("000_f0.png", "001_f1.png", "per_class_iou.png", "confusion_matrix.png"):
        (vis / name).write_bytes(b"an older run's")
    monkeypatch.setattr(visualize, "save_rgb", cut_short(visualize.save_rgb))
    monkeypatch.setattr(visualize, "save_confusion_matrix",
                        cut_short(visualize.save_confusion_matrix))
    result = evaluate_checkpoint(str(checkpoint), "folder", str(root), "all",
                                 save_vis=str(vis), vis_count=2)
    assert result["vis_pictures"] == {"written": 0, "not_written": 2}
    assert "chart_error" in result
    # The bar chart was drawn before the disk filled: it stays, and is this run's.
    assert sorted(p.name for p in vis.iterdir()) == ["per_class_iou.png"]
    assert cv2.imread(str(vis / "per_class_iou.png")) is not None

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

"""Check canet evaluate --save-vis' chart titles and picture colours.

The titles name what was scored; the pictures use the checkpoint's colours, as
segment-bag and the node paint them.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_evaluate import _cli_args, _tiny_checkpoint

import canet_ros.visualize as visualize
from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import ClassSet
from canet_ros.cli import evaluate as evaluate_cli
from canet_ros.evaluation import evaluate_checkpoint
from canet_ros.models import build_canet

# frames per split, named as CamVid names them: drive prefix, then the frame
FRAMES = {"train": ["0001TP_00000", "0006R0_00000", "0006R0_00001"],
          "val": ["0006R0_00002", "0016E5_00000", "0016E5_00001"]}


def _camvid(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for split, names in FRAMES.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for name in names:
            cv2.imwrite(str(root / split / f"{name}.png"),
                        rng.integers(0, 255, (36, 48, 3), dtype=np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"{name}.png"),
                        rng.integers(0, 12, (36, 48), dtype=np.uint8))
    return root


@pytest.fixture
def titles(monkeypatch):
    """Record each chart's title while still drawing the chart."""
    seen = {}

    def recorder(name, draw):
        def wrapped(*args, **kwargs):
            call = inspect.signature(draw).bind(*args, **kwargs)
            call.apply_defaults()
            seen[name] = call.arguments["title"]
            return draw(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(visualize, "save_iou_bar_chart",
                        recorder("iou", visualize.save_iou_bar_chart))
    monkeypatch.setattr(visualize, "save_confusion_matrix",
                        recorder("confusion", visualize.save_confusion_matrix))
    return seen


def test_chart_titles_name_the_included_frames_and_their_count(tmp_path, titles):
    root = _camvid(tmp_path / "camvid")
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", half=False)
    vis = tmp_path / "vis"
    res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", include=["0016E5"],
                              save_vis=str(vis), vis_count=0)
    assert res["frames"] == 2  # of val's 3: the two 0016E5 frames
    assert (vis / "per_class_iou.png").is_file() and (vis / "confusion_matrix.png").is_file()
    # Not "camvid val": the two 0016E5 frames are not the split.
    assert titles["iou"].startswith("camvid val 0016E5 (2 frames): mIoU ")
    assert titles["iou"].endswith(f"{100 * res['miou']:.1f}%")
    assert titles["confusion"].startswith("camvid val 0016E5 (2 frames)\n")


def test_chart_titles_name_the_excluded_frames(tmp_path, titles):
    root = _camvid(tmp_path / "camvid")
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", half=False)
    res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "train+val",
                              exclude=["0006R0", "0001TP"], save_vis=str(tmp_path / "v"),
                              vis_count=0)
    assert res["frames"] == 2
    assert titles["iou"].startswith("camvid train+val without 0006R0,0001TP (2 frames): ")


def test_holdout_chart_title_is_the_drive_as_the_text_output_says(tmp_path, titles, capsys):
    root = _camvid(tmp_path / "camvid")
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", half=False)
    args = _cli_args(checkpoint=ckpt, data_root=root, holdout="0006R0", device="cpu",
                     save_vis=tmp_path / "vis", vis_count=0)
    assert evaluate_cli.run(args) == 0
    first = capsys.readouterr().out.splitlines()[0]
    # 0006R0 has two train frames and one val frame; the text and the title say so alike.
    assert " on camvid train+val 0006R0, network input " in first
    assert titles["iou"].startswith("camvid train+val 0006R0 (3 frames): mIoU ")


def _folder_dataset(root: Path, names, colors) -> Path:
    rng = np.random.default_rng(4)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text(
        f"names: {json.dumps(names)}\ncolors: {json.dumps(colors)}\nignore_index: 255\n"
        f"split: {{val_every: 2}}\n")
    for i in range(4):
        mask = rng.integers(0, len(names), (64, 96)).astype(np.uint8)
        mask[:6] = 255  # void: black in the pictures
        cv2.imwrite(str(root / "images" / f"f{i}.png"),
                    rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "masks" / f"f{i}.png"), mask)
    return root


def test_pictures_use_the_checkpoints_colours_not_the_edited_classes_yaml(tmp_path):
    names = ["road", "sidewalk", "car", "tree"]
    edited = [[128, 64, 128], [244, 35, 232], [0, 0, 142], [10, 200, 10]]
    trained = [[1, 2, 3], [40, 50, 60], [70, 80, 90], [110, 120, 130]]
    root = _folder_dataset(tmp_path / "ds", names, edited)
    ckpt = save_checkpoint(tmp_path / "ck.pt", build_canet("mobilenetv2", 4).eval(),
                           build_metadata("mobilenetv2", ClassSet("mine", tuple(names),
                                          tuple(map(tuple, trained)), 255),
                                          input_size=(96, 64)), half=False)
    vis = tmp_path / "vis"
    evaluate_checkpoint(str(ckpt), "folder", str(root), "val", save_vis=str(vis), vis_count=2)
    pictures = sorted(vis.glob("00*.png"))
    assert [p.name for p in pictures] == ["000_f1.png", "001_f3.png"]  # val_every 2
    palette = np.array(trained, np.uint8)
    for picture, frame in zip(pictures, ("f1", "f3"), strict=True):
        side = cv2.imread(str(picture))[:, :, ::-1]
        mask = cv2.imread(str(root / "masks" / f"{frame}.png"), cv2.IMREAD_UNCHANGED)
        truth = np.where((mask == 255)[..., None], 0, palette[np.minimum(mask, 3)])
        assert np.array_equal(side[:, 100:196], truth)  # frame | 4 px | truth | 4 px | pred
        painted = {tuple(c) for c in side[:, 200:].reshape(-1, 3).tolist()}
        assert painted <= {tuple(c) for c in trained}, painted

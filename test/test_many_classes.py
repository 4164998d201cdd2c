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

"""Many classes and odd ones: past what uint8 masks hold, an ignore id that is a class.

A dataset's masks are uint8 PNGs: class ids 0-254 and the ignore id 255 at most
(own_data.md). A model may have more classes (segment-bag writes mono16 labels for them),
but nothing may write a dataset it cannot hold, and no tool may score with an ignore id
that is also a class id: that class's pixels would silently count for nothing.
"""
from __future__ import annotations

import pytest
import yaml
from test_bag_helpers import camera_bag

from canet_ros.checkpoint import CheckpointError, read_checkpoint
from canet_ros.cli import main
from canet_ros.data.classes_file import parse_classes

TOPIC = "/cam/image_raw"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, one_torch_thread):
    """Seeded 64x48 models: (classes, ignore id) -> path; the weights give varied labels."""
    import torch

    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import generic_class_set
    from canet_ros.models import build_canet

    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for count, ignores in ((300, (300, 255)), (256, (256,)), (255, (255,))):
        torch.manual_seed(0)
        model = build_canet("mobilenetv2", count).eval()
        with torch.no_grad():
            torch.nn.init.normal_(model.classifier.weight, std=20.0)
            model.classifier.bias.zero_()
        for ignore in ignores:
            meta = build_metadata("mobilenetv2", generic_class_set(count, ignore),
                                  input_size=(64, 48))
            paths[count, ignore] = save_checkpoint(folder / f"c{count}i{ignore}.pt", model,
                                                   meta)
    return paths


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return camera_bag(tmp_path_factory.mktemp("bag") / "rec", n=3, kind="rgb8", topic=TOPIC)


def _extract(bag, out, checkpoint, capsys, *extra):
    rc = main(["extract-frames", str(bag), "--topic", TOPIC, "--out", str(out),
               "--checkpoint", str(checkpoint), "--min-interval", "0", "--no-progress",
               *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("model, extra", [((300, 300), ()), ((300, 300), ("--no-prelabels",)),
                                          ((256, 256), ())])
def test_extract_frames_refuses_classes_masks_cannot_hold(checkpoints, bag, tmp_path, capsys,
                                                          model, extra):
    out = tmp_path / "frames"
    rc, stdout, err = _extract(bag, out, checkpoints[model], capsys, *extra)
    assert rc == 1 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(checkpoints[model]) in lines[0]
    assert f"{model[0]} classes" in lines[0] and "255" in lines[0] and "uint8" in lines[0]
    assert not out.exists()  # refused before anything was written


def test_extract_frames_takes_255_classes_and_writes_a_dataset_check_accepts(
        checkpoints, bag, tmp_path, capsys):
    out = tmp_path / "frames"
    rc, _, err = _extract(bag, out, checkpoints[255, 255], capsys)
    assert rc == 0, err
    classes, _, problems = parse_classes(out / "classes.yaml")
    assert problems == [] and classes.num_classes == 255 and classes.ignore_index == 255
    assert len(list((out / "prelabels").iterdir())) == 3


def test_checkpoint_whose_ignore_id_is_a_class_is_refused(checkpoints):
    path = checkpoints[300, 255]
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and "ignore_index 255 is the id of class 255" in text
    # An ignore id past the classes is fine, for any class count.
    assert read_checkpoint(checkpoints[300, 300])["ignore_index"] == 300


def test_segment_bag_refuses_it_in_one_line(checkpoints, bag, tmp_path, capsys):
    path = checkpoints[300, 255]
    rc = main(["segment-bag", str(bag), "--checkpoint", str(path), "--out",
               str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert rc == 1 and "Traceback" not in err, err
    assert len(errors) == 1 and str(path) in errors[0] and "is the id of class 255" in errors[0]


def test_an_older_cached_export_of_it_is_refused_too(checkpoints):
    """An older canet_ros cached the export of such a checkpoint with its metadata."""
    pytest.importorskip("onnxruntime")
    from canet_ros.inference import SegmentationEngine
    from canet_ros.inference.onnx_runtime import file_digest, store_graph

    good = read_checkpoint(checkpoints[300, 300])
    meta = {**good, "ignore_index": 255}  # what that older version stored, unchecked
    path = checkpoints[300, 255]
    store_graph(file_digest(path), meta, (64, 48), b"never run: refused before")
    with pytest.raises(CheckpointError, match="ignore_index 255 is the id of class 255"):
        SegmentationEngine(path, device="cpu")


def _classes_yaml(folder, count: int, ignore: int):
    folder.mkdir()
    names = [f"c{i}" for i in range(count)]
    colors = [[i % 256, i // 256, 7] for i in range(count)]
    (folder / "classes.yaml").write_text(yaml.safe_dump(
        {"names": names, "colors": colors, "ignore_index": ignore}))
    return folder / "classes.yaml"


@pytest.mark.parametrize("ignore", [255, 256])
def test_classes_yaml_with_more_classes_than_uint8_holds_says_so(tmp_path, ignore):
    # The old advice looped: "255 is the id of class 255; use an id past the classes",
    # then for 256: "must be an integer 0-255".
    classes, _, problems = parse_classes(_classes_yaml(tmp_path / "d", 256, ignore))
    assert classes is None and len(problems) == 1, problems
    assert "256 classes" in problems[0] and "at most 255 classes" in problems[0]
    assert "uint8" in problems[0] and "is the id of class" not in problems[0]
    assert "0-255, not" not in problems[0]


def test_classes_yaml_with_255_classes_is_fine(tmp_path):
    classes, _, problems = parse_classes(_classes_yaml(tmp_path / "d", 255, 255))
    assert problems == [] and classes.num_classes == 255

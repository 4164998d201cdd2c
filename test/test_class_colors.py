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

"""Class colours chosen at deployment: the file, the engine's every frame path, segment-bag.

Expected colours are written out here (CamVid's class order, Cityscapes' colours, hex by
hand); colour masks are checked against ``expected[labels]`` and overlays against a blend
worked out here from the labels the engine gave.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import image_array, make_checkpoint, read_bag, run_cli
from test_engine_cuda_stubbed import stubbed_cuda  # noqa: F401 (a fixture, used by name)

from canet_ros.class_colors import (
    ClassColorsError,
    apply_class_colors,
    load_class_colors,
    read_class_colors,
)
from canet_ros.classes import CAMVID, CITYSCAPES
from canet_ros.inference import EngineError, SegmentationEngine

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# Every CamVid class in another colour, each name in another spelling (case, '_', spaces).
SPELLINGS = ("SKY", "building", "Pole", "road", "PAVEMENT", "tree", "signsymbol", "fence",
             "car", "PEDESTRIAN", "bicyclist")
NEW = np.array([(70, 130, 180), (70, 70, 70), (153, 153, 153), (128, 64, 129), (244, 35, 232),
                (107, 142, 35), (220, 220, 0), (190, 153, 153), (0, 0, 142), (220, 20, 60),
                (119, 11, 32)], np.uint8)


def write(folder: Path, text: str, name: str = "class_colors.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def all_classes(tmp_path_factory) -> Path:
    """Write a file giving every CamVid class a new colour, some as lists, some as hex."""
    lines = []
    for i, (name, rgb) in enumerate(zip(SPELLINGS, NEW.tolist(), strict=True)):
        value = rgb if i % 2 else '"#{:02x}{:02X}{:02x}"'.format(*rgb)
        lines.append(f"{name}: {value}")
    return write(tmp_path_factory.mktemp("colors"), "\n".join(lines) + "\n")


def hand_blend_check(labels, overlay, frame, palette, order, alpha):
    """Overlay = round((1 - a) * frame + a * palette[labels]), x.5 either way."""
    tint = palette[labels].astype(np.float64)
    tint = tint if order == "rgb" else tint[..., ::-1]
    exact = (1 - alpha) * frame.astype(np.float64) + alpha * tint
    diff = np.abs(overlay.astype(np.float64) - np.floor(exact + 0.5))
    half = np.isclose(exact - np.floor(exact), 0.5)
    assert (diff[~half] == 0).all() and (diff[half] <= 1).all()


def scene(height=100, width=140, seed=0):
    rng = np.random.default_rng(seed)
    frame = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (width, height))
    return np.ascontiguousarray(frame)


def check_outputs(engine, palette, order="rgb", alpha=0.3, frame=None):
    frame = scene() if frame is None else frame
    res = engine.infer(frame, order, color=True, overlay=True, alpha=alpha)
    assert len(np.unique(res.labels)) >= 3  # colours of several classes are compared
    np.testing.assert_array_equal(res.color, palette[res.labels])
    hand_blend_check(res.labels, res.overlay, frame, palette, order, alpha)


# -- the file -----------------------------------------------------------------------------
def test_names_match_whatever_their_case_and_underscores(tmp_path):
    path = write(tmp_path, 'Traffic_Light: [1, 2, 3]\n"TRAFFIC  sign": "#0A0b0C"\n'
                           "Motorcycle: [255, 0, 255]\n")
    classes = load_class_colors(path, CITYSCAPES)
    expected = list(CITYSCAPES.colors)
    expected[6], expected[7], expected[17] = (1, 2, 3), (10, 11, 12), (255, 0, 255)
    assert classes.colors == tuple(expected)
    assert (classes.names, classes.ignore_index, classes.name) == (
        CITYSCAPES.names, 255, "cityscapes")
    assert CITYSCAPES.colors[6] == (250, 170, 30)  # a new ClassSet; the built-in one kept


@pytest.mark.parametrize("spelling", ["sign_symbol", "Sign Symbol", "signsymbol",
                                      "SIGN_SYMBOL"])
def test_a_separator_may_be_added_or_left_out(tmp_path, spelling):
    """The snake case of CamVid's ``SignSymbol`` is ``sign_symbol``, as docs/ros.md says."""
    classes = load_class_colors(write(tmp_path, f"{spelling}: [1, 2, 3]\n"), CAMVID)
    assert classes.colors[CAMVID.names.index("SignSymbol")] == (1, 2, 3)
    trafficlight = load_class_colors(write(tmp_path, "trafficlight: [4, 5, 6]\n", "t.yaml"),
                                     CITYSCAPES)
    assert trafficlight.colors[CITYSCAPES.names.index("traffic light")] == (4, 5, 6)


def test_read_once_apply_to_a_model_later_and_home_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, "car: [0, 0, 142]\n")
    colors = read_class_colors("~/class_colors.yaml")
    assert colors.path == str(tmp_path / "class_colors.yaml")
    assert apply_class_colors(CAMVID, colors).colors[8] == (0, 0, 142)  # CamVid's Car
    assert apply_class_colors(CITYSCAPES, colors).colors[13] == (0, 0, 142)  # Cityscapes' car


BAD_FILES = {
    "not yaml": ("road: [1, 2\n", "not valid YAML"),
    "not a mapping": ("- road\n- car\n", "not a mapping of class name to colour"),
    "a scalar": ("road\n", "not a mapping of class name to colour"),
    "empty": ("", "the file is empty"),
    "two values": ("road: [1, 2]\n", "line 1: 'road': [1, 2] is not a colour"),
    "past 255": ("sky: [0, 0, 0]\nroad: [1, 2, 256]\n", "line 2: 'road': [1, 2, 256]"),
    "negative": ("road: [-1, 2, 3]\n", "is not a colour"),
    "a float": ("road: [1.0, 2, 3]\n", "is not a colour"),
    "a bool": ("road: [true, 2, 3]\n", "is not a colour"),
    "short hex": ('road: "#12345"\n', "'#12345' is not a colour"),
    "unquoted hex": ("road: #ff0000\n", "must be quoted"),
    "a name YAML reads as a number": (
        "1: [1, 2, 3]\n", "line 1: YAML reads '1' unquoted as 1, not as a class name; quote it"),
    "a name YAML reads as a bool": ("sky: [0, 0, 0]\nyes: [1, 2, 3]\n",
                                    "line 2: YAML reads 'yes' unquoted as True"),
    "a name YAML reads as null": ("null: [1, 2, 3]\n", "YAML reads 'null' unquoted as None"),
    "a list as a name": ("[a, b]: [1, 2, 3]\n", "line 1: ['a', 'b'] is not a class name"),
    "four numbers (RGBA)": ("road: [255, 0, 0, 128]\n", "[255, 0, 0, 128] is not a colour"),
    "eight hex digits": ('road: "#ff0000ff"\n', "'#ff0000ff' is not a colour"),
    "nested too deeply": ("road: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML"),
    "a date that is none": ("road: 2020-13-01\n", "not valid YAML"),
    "control characters": (
        "road: [1, 2, 3]\n\x00\x00\n", "not valid YAML (unacceptable character #x0000"),
    "twice": ("road: [1, 2, 3]\nroad: [4, 5, 6]\n",
              "line 2: 'road' names the same class as 'road' on line 1"),
    "twice, spelt apart": ("Sign_Symbol: [1, 2, 3]\nsign symbol: [4, 5, 6]\n",
                           "names the same class as 'Sign_Symbol'"),
    "unknown names": ("road: [1, 2, 3]\nroadd: [1, 2, 3]\nlane: [0, 0, 0]\n",
                      "'roadd' (line 2), 'lane' (line 3) are not classes of this model; its 11 "
                      "classes are 'Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', "
                      "'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_each_bad_file_is_named_with_its_problem(tmp_path, case):
    text, words = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(ClassColorsError) as caught:
        load_class_colors(path, CAMVID)
    assert str(caught.value).startswith(f"{path}: class colours: ")
    assert words in str(caught.value)


def test_yaml_merge_keys_give_colours_too(tmp_path):
    path = write(tmp_path, "<<: {Road: [1, 2, 3], Sky: [4, 5, 6]}\nCar: [7, 8, 9]\n")
    colors = load_class_colors(path, CAMVID).colors
    assert (colors[3], colors[0], colors[8]) == ((1, 2, 3), (4, 5, 6), (7, 8, 9))


def test_names_two_classes_share_loosely_go_to_the_one_spelled_or_are_refused(tmp_path):
    from canet_ros.classes import ClassSet
    model = ClassSet("own", ("Road", "road", "Traffic_Light", "traffic light", "car"),
                     ((1, 1, 1),) * 5, 255)
    exact = write(tmp_path, "Road: [255, 0, 0]\ntraffic light: [0, 255, 0]\nCAR: [0, 0, 9]\n")
    colors = load_class_colors(exact, model).colors
    assert colors == ((255, 0, 0), (1, 1, 1), (1, 1, 1), (0, 255, 0), (0, 0, 9))
    loose = write(tmp_path, "ROAD: [255, 0, 0]\n", "loose.yaml")
    with pytest.raises(ClassColorsError, match=r"line 1: 'ROAD' matches the classes 'Road' "
                                               r"and 'road' of this model; write the name"):
        load_class_colors(loose, model)


def test_unreadable_files_are_named(tmp_path):
    cases = {tmp_path / "missing.yaml": "no such file", tmp_path: "a folder, not a YAML file"}
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"road: [1, 2, 3]\n\xff\xfe")
    cases[binary] = "not UTF-8 text (byte 0xff at position 16)"
    for path, words in cases.items():
        with pytest.raises(ClassColorsError) as caught:
            read_class_colors(path)
        assert str(caught.value).startswith(f"{path}: class colours: {words}")


# -- the engine ---------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_colour_and_overlay_take_the_files_colours(seeded, all_classes, cpu_loops, order):
    assert (NEW != np.asarray(CAMVID.colors, np.uint8)).any(axis=1).all()  # each one differs
    engine = SegmentationEngine(seeded, device="cpu", precision="fp32",
                                class_colors=all_classes)
    np.testing.assert_array_equal(engine.class_set.palette(), NEW)
    assert engine.class_set.names == CAMVID.names
    check_outputs(engine, NEW, order)
    bgr = np.ascontiguousarray(scene(seed=1)[..., ::-1])
    check_outputs(engine, NEW, "bgr", alpha=0.5, frame=bgr)


def test_set_after_loading_and_what_is_refused(seeded, all_classes, tmp_path):
    engine = SegmentationEngine(seeded, device="cpu", precision="fp32")
    check_outputs(engine, np.asarray(CAMVID.colors, np.uint8))
    engine.set_class_colors(read_class_colors(all_classes))
    check_outputs(engine, NEW)
    engine.set_class_colors(CAMVID)  # a ClassSet of the model's names: back to CamVid's
    check_outputs(engine, np.asarray(CAMVID.colors, np.uint8))
    with pytest.raises(EngineError, match="not this model's classes"):
        engine.set_class_colors(CITYSCAPES)
    with pytest.raises(ClassColorsError, match="'lane' \\(line 1\\) is not a class"):
        engine.set_class_colors(write(tmp_path, "lane: [1, 2, 3]\n"))
    check_outputs(engine, np.asarray(CAMVID.colors, np.uint8))  # refused: nothing changed


def test_openvino_lowres_path_takes_them(seeded, all_classes, cpu_loops):
    pytest.importorskip("openvino")
    from canet_ros.inference.onnx_runtime import cached_graph, file_digest
    from canet_ros.inference.openvino_runner import OpenVinoRunner

    engine = SegmentationEngine(seeded, device="cpu", precision="fp32", resolution=(96, 64),
                                class_colors=all_classes)
    graph = cached_graph(file_digest(engine.checkpoint_path), engine.resolution).path
    engine._runner = OpenVinoRunner(graph, engine.resolution, engine.num_classes, "fp32",
                                    threads=1)
    assert engine._runner.lowres
    check_outputs(engine, NEW)


@pytest.mark.usefixtures("stubbed_cuda")
def test_cuda_frame_path_takes_them(seeded, all_classes):
    """The CUDA branch (run on the CPU, CUDA's calls stubbed): at build and after."""
    engine = SegmentationEngine(seeded, device="cuda", cuda_graph=False,
                                class_colors=all_classes)
    assert engine._pipeline is not None
    check_outputs(engine, NEW)
    engine.set_class_colors(CAMVID)
    check_outputs(engine, np.asarray(CAMVID.colors, np.uint8), "bgr")


def test_frames_during_a_change_have_one_palette_each(seeded, all_classes):
    engine = SegmentationEngine(seeded, device="cpu", precision="fp32", resolution=(64, 64))
    old, new = np.asarray(CAMVID.colors, np.uint8), NEW
    recoloured = load_class_colors(all_classes, CAMVID)
    frame, seen, stop = scene(48, 64), [], threading.Event()

    def segment():
        while not stop.is_set():
            res = engine.infer(frame, color=True)
            seen.append((res.color == old[res.labels]).all() or
                        (res.color == new[res.labels]).all())

    worker = threading.Thread(target=segment)
    worker.start()
    try:
        for i in range(40):
            engine.set_class_colors(recoloured if i % 2 == 0 else CAMVID)
    finally:
        stop.set()
        worker.join()
    assert seen and all(seen)


# -- segment-bag --------------------------------------------------------------------------
def test_segment_bag_outputs_and_report_take_them(tmp_path, capsys, all_classes, monkeypatch):
    from canet_ros.bag import SAMPLE_BAG, SAMPLE_IMAGE_TOPIC, video
    from canet_ros.bag.writer import OutputTopics

    legends = []

    class Recorded(video.OverlayVideo):
        def __init__(self, outdir, names, colors_rgb, fmt=None):
            super().__init__(outdir, names, colors_rgb, fmt)
            legends.append(self.colors.copy())  # what the video's legend is drawn from

    monkeypatch.setattr(video, "OverlayVideo", Recorded)
    out = tmp_path / "out"
    rc, _, err = run_cli(["sample", "--out", str(out), "--checkpoint",
                          str(make_checkpoint(tmp_path)), "--resolution", "96x72",
                          "--precision", "fp32", "--device", "cpu", "--no-progress",
                          "--video", "--class-colors", str(all_classes)], capsys)
    assert rc == 0, err
    np.testing.assert_array_equal(legends[0], NEW)
    bag, = [p for p in out.iterdir() if p.is_dir()]
    messages = read_bag(bag)
    inputs = {(m.header.stamp.sec, m.header.stamp.nanosec): m
              for _, m in read_bag(SAMPLE_BAG)[SAMPLE_IMAGE_TOPIC]}
    outputs = {name: [m for _, m in messages[topic]]
               for name, topic in OutputTopics.for_input(SAMPLE_IMAGE_TOPIC).as_dict().items()}
    assert len(outputs["labels"]) == 8
    for labels_msg, color_msg, overlay_msg in zip(*outputs.values(), strict=True):
        labels = image_array(labels_msg)
        np.testing.assert_array_equal(image_array(color_msg), NEW[labels])
        stamp = (labels_msg.header.stamp.sec, labels_msg.header.stamp.nanosec)
        bgr = cv2.imdecode(np.asarray(inputs[stamp].data, np.uint8), cv2.IMREAD_COLOR)
        assert overlay_msg.encoding == "bgr8"
        hand_blend_check(labels, image_array(overlay_msg), bgr, NEW, "bgr", 0.5)
    report = json.loads((out / "report.json").read_text())
    assert report["palette"] == NEW.tolist()
    markdown = (out / "report.md").read_text()
    assert "| Car | 0, 0, 142 | #00008e |" in markdown
    legend = cv2.imread(str(out / "legend.png"))[..., ::-1].reshape(-1, 3)
    drawn = {tuple(c) for c in np.unique(legend, axis=0).tolist()}
    assert {tuple(c) for c in NEW.tolist()} <= drawn


def test_segment_bag_refuses_a_bad_file_before_the_model(tmp_path, capsys, monkeypatch):
    from canet_ros.cli import segment_bag

    monkeypatch.setattr(segment_bag, "_engine_factory", lambda args: pytest.fail("loaded"))
    path = write(tmp_path, "road: [1, 2, 300]\n")
    rc, _, err = run_cli(["sample", "--out", str(tmp_path / "out"), "--class-colors",
                          str(path)], capsys)
    assert rc == 1 and not (tmp_path / "out").exists()
    assert err == (f"canet segment-bag: error: {path}: class colours: line 1: 'road': "
                   "[1, 2, 300] is not a colour; give [R, G, B] with integers 0-255 or "
                   "\"#rrggbb\"\n")


def test_segment_bag_names_a_class_the_model_lacks(tmp_path, capsys):
    path = write(tmp_path, "lane: [1, 2, 3]\n")
    rc, _, err = run_cli(["sample", "--out", str(tmp_path / "out"), "--checkpoint",
                          str(make_checkpoint(tmp_path)), "--resolution", "96x72",
                          "--device", "cpu", "--class-colors", str(path)], capsys)
    assert rc == 1 and not (tmp_path / "out").exists()
    assert f"error: {path}: class colours: 'lane' (line 1) is not a class of this model" in err

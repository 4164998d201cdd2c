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

"""Hostile YAML (odd types, alias bombs, other encodings): one short line per problem."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from canet_ros.classes import ClassSet
from canet_ros.data import (
    DatasetError,
    DatasetProblems,
    build_dataset,
    check_dataset,
    write_dataset,
)
from canet_ros.data.camvid import camvid_pairs
from canet_ros.data.cityscapes import cityscapes_pairs
from canet_ros.data.classes_file import load_classes, parse_classes
from canet_ros.data.problems import BRIEF_WIDTH, brief
from canet_ros.training.transfer import freeze_layers, load_class_map, plan_transfer

TWO = ClassSet("two", ("road", "car"), ((128, 64, 128), (0, 0, 142)), 255)
SHORT = 400  # characters: far above any of these messages, far below a bomb's repr
DEPTH = 7  # nine-fold per level: 9**7 = 4.8 million leaves, a 34 MB repr


def bomb_anchors(depth: int = DEPTH) -> str:
    """YAML lines defining &a0 .. &a{depth-1}; *a{depth-1} expands to 9**depth strings."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def inline_bomb(depth: int = DEPTH) -> str:
    """One flow value, anchors inside it, that expands to 9**depth strings."""
    value = "&b0 [" + ", ".join(['"lol"'] * 9) + "]"
    for i in range(1, depth):
        value = f"&b{i} [{value}, " + ", ".join([f"*b{i - 1}"] * 8) + "]"
    return value


def folder(tmp_path: Path, classes_text: str) -> Path:
    items = [(f"f{i}", np.full((8, 8, 3), 40 * i, np.uint8), np.zeros((8, 8), np.uint8))
             for i in range(5)]  # the fifth goes to val
    root = write_dataset(tmp_path / "ds", TWO, items)
    (root / "classes.yaml").write_text(classes_text, encoding="utf-8")
    return root


def listed(root: Path) -> list:
    with pytest.raises(DatasetProblems) as exc:
        check_dataset(root)
    return exc.value.problems


def test_the_bomb_is_a_bomb():
    # The premise of the length checks below: the full repr would be tens of MB.
    value = yaml.safe_load(bomb_anchors())[f"a{DEPTH - 1}"]
    assert len(repr(value)) > 30_000_000


@pytest.mark.parametrize("text, key", [
    ("names: [road, [a, b]]\ncolors: [[1, 2, 3], [4, 5, 6]]\n", "'names'"),
    ("names: [road, {a: 1}]\ncolors: [[1, 2, 3], [4, 5, 6]]\n", "'names'"),
    ("names: [[a], [a]]\ncolors: [[1, 2, 3], [4, 5, 6]]\n", "'names'"),
    ("names: [road, car]\ncolors: [[1, 2, 3], [4, 5, 6]]\n1: x\nfoo: y\n",
     "unknown keys [1, 'foo']"),  # sorted as text: "1" before "foo"
    ("name: [a, b]\nnames: [road, car]\ncolors: [[1, 2, 3], [4, 5, 6]]\n", "'name'"),
], ids=["list-name", "dict-name", "list-twice", "mixed-keys", "list-dataset-name"])
def test_odd_types_are_problems_not_tracebacks(tmp_path, text, key):
    root = folder(tmp_path, text)
    found = listed(root)
    assert len(found) == 1 and "\n" not in found[0], found
    assert found[0].startswith(f"{root / 'classes.yaml'}: ") and key in found[0], found
    with pytest.raises(DatasetError, match="classes.yaml"):
        load_classes(root)


@pytest.mark.parametrize("text, why", [
    ("names: [" + "9" * 5000 + "]\n", "digits"),  # Python refuses > 4300-digit ints
    ("names: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
], ids=["huge-int", "deep"])
def test_yaml_python_cannot_build_is_a_problem(tmp_path, text, why):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    class_set, _, problems = parse_classes(path)  # documented never to raise
    assert class_set is None and len(problems) == 1
    assert problems[0].startswith(f"{path}: ") and why in problems[0], problems


@pytest.mark.parametrize("tail, key", [
    (f"names: [road, car]\ncolors: [*a{DEPTH - 1}, [4, 5, 6]]\n", "'colors'"),
    (f"names: [road, *a{DEPTH - 1}]\ncolors: [[1, 2, 3], [4, 5, 6]]\n", "'names'"),
    (f"names: [road, car]\ncolors: [[1, 2, 3], [4, 5, 6]]\nignore_index: *a{DEPTH - 1}\n",
     "'ignore_index'"),
    (f"names: [road, car]\ncolors: [[1, 2, 3], [4, 5, 6]]\nsplit: *a{DEPTH - 1}\n", "'split'"),
    (f"name: *a{DEPTH - 1}\nnames: [road, car]\ncolors: [[1, 2, 3], [4, 5, 6]]\n", "'name'"),
], ids=["colors", "names", "ignore", "split", "name"])
def test_alias_bomb_in_classes_yaml_gives_short_lines(tmp_path, tail, key):
    path = tmp_path / "classes.yaml"
    path.write_text(bomb_anchors() + tail)
    assert path.stat().st_size < 1000
    class_set, _, problems = parse_classes(path)
    assert class_set is None
    about = [p for p in problems if key in p]
    assert about and all(len(p) < len(str(path)) + SHORT and "\n" not in p for p in problems)
    assert "[[" in about[0]  # still shows how the value starts


def test_brief_keeps_short_values_whole_and_cuts_long_ones():
    assert brief([1, "a", {"k": None}]) == repr([1, "a", {"k": None}])
    assert brief("x" * 1000).startswith("'xxx") and len(brief("x" * 1000)) <= BRIEF_WIDTH
    assert "\n" not in brief("a\nb")


def test_class_map_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_bytes('road: "Ro\u00e4d"\n'.encode("latin-1"))
    with pytest.raises(DatasetError) as exc:
        load_class_map(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and "not UTF-8" in message and "\n" not in message


def test_class_map_alias_bomb_gives_a_short_line(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(f"road: Road\ncar: {inline_bomb()}\n")
    assert len(repr(yaml.safe_load(path.read_text())["car"])) > 30_000_000
    with pytest.raises(DatasetError) as exc:
        load_class_map(path)
    assert len(str(exc.value)) < len(str(path)) + SHORT and "car" in str(exc.value)


@pytest.mark.parametrize("text", ["road: " + "9" * 5000 + "\n",
                                  "road: " + "[" * 5000 + "]" * 5000 + "\n"],
                         ids=["huge-int", "deep"])
def test_class_map_python_cannot_build_is_a_dataset_error(tmp_path, text):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(DatasetError, match="map.yaml: cannot read class map"):
        load_class_map(path)


def test_plan_transfer_messages_stay_short():
    many = {f"class{i}": ["Road"] for i in range(2000)}  # a map of many unknown classes
    with pytest.raises(DatasetError) as exc:
        plan_transfer(["Road"], ["road"], many)
    assert len(str(exc.value)) < SHORT and "class0" in str(exc.value)
    with pytest.raises(DatasetError) as exc:
        plan_transfer(["Road"], ["road"], {"road": [f"old{i}" for i in range(2000)]})
    assert len(str(exc.value)) < SHORT and "old0" in str(exc.value)


LONG = "x" * 100_000  # text from a config file: dataset, train_split, train_include


def test_unknown_dataset_is_quoted_short(tmp_path):
    with pytest.raises(DatasetError) as exc:
        build_dataset(LONG, tmp_path, "train")
    assert len(str(exc.value)) < SHORT and "unknown dataset 'xxx" in str(exc.value)


def test_camvid_split_and_filters_are_quoted_short(tmp_path):
    with pytest.raises(DatasetError) as exc:
        camvid_pairs(tmp_path, LONG)
    assert len(str(exc.value)) < SHORT and "unknown CamVid split 'xxx" in str(exc.value)
    for sub in ("train", "trainannot"):
        (tmp_path / sub).mkdir()
    with pytest.raises(DatasetError) as exc:
        camvid_pairs(tmp_path, "train", include=[f"p{i}" for i in range(20_000)])
    assert len(str(exc.value)) < len(str(tmp_path)) + SHORT and "'p0'" in str(exc.value)


def test_cityscapes_filters_are_quoted_short(tmp_path):
    city = tmp_path / "leftImg8bit" / "train" / "aachen"
    city.mkdir(parents=True)
    (city / "aachen_0_leftImg8bit.png").write_bytes(b"")
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError) as exc:
        cityscapes_pairs(tmp_path, "train", cities=[f"c{i}" for i in range(20_000)])
    assert len(str(exc.value)) < len(str(tmp_path)) + SHORT and "'c0'" in str(exc.value)


def test_train_layers_is_quoted_short():
    with pytest.raises(ValueError) as exc:
        freeze_layers(None, LONG)
    assert len(str(exc.value)) < SHORT and "not 'xxx" in str(exc.value)


def test_unknown_dataset_without_a_root_is_named_not_a_key_error():
    # The default-root lookup knows camvid and cityscapes only; the name is checked first.
    with pytest.raises(DatasetError) as exc:
        build_dataset("xyz", None, "train")
    assert "unknown dataset 'xyz'" in str(exc.value)
    with pytest.raises(DatasetError) as exc:
        build_dataset(LONG, None, "train")  # is_dir() of such a name: file name too long
    assert len(str(exc.value)) < SHORT and "unknown dataset 'xxx" in str(exc.value)


# -- canet train --config ------------------------------------------------------------------
def test_config_with_keys_of_mixed_types_names_them(tmp_path):
    from canet_ros.training.config import check_values, load_yaml

    path = tmp_path / "cfg.yaml"
    path.write_text("1: x\nfoo: y\nlr: 0.1\n", encoding="utf-8")
    with pytest.raises(ValueError) as exc:  # sorting 1 against 'foo' was a TypeError
        check_values(load_yaml(path), str(path))
    assert str(exc.value) == f"{path}: unknown training option(s): 1, foo"


def test_config_that_is_not_utf8_is_named(tmp_path):
    from canet_ros.training.config import load_yaml

    path = tmp_path / "latin1.yaml"
    path.write_bytes("optimizer: adam # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError) as exc:
        load_yaml(path)
    assert str(exc.value) == (f"{path}: config is not UTF-8 text (byte 0xe9 at position 21); "
                              f"save it as UTF-8")


def test_config_value_of_an_alias_bomb_is_quoted_short(tmp_path):
    from canet_ros.training.config import check_values, load_yaml

    path = tmp_path / "bomb.yaml"
    path.write_text("lr: " + inline_bomb() + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        check_values(load_yaml(path), str(path))
    assert len(str(exc.value)) < SHORT and str(exc.value).startswith(f"{path}: lr: expected")


def test_a_bad_class_map_is_named_before_the_data_loads(tmp_path, capsys):
    from canet_ros.cli import main

    cmap = tmp_path / "map.yaml"
    cmap.write_bytes("road: Stra\xdfe\n".encode("latin-1"))
    code = main(["train", "--data-root", str(tmp_path / "no-such-dataset"), "--class-map",
                 str(cmap), "--init-weights", "default", "--out-dir", str(tmp_path / "run"),
                 "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert str(cmap) in err[0] and "not UTF-8" in err[0]  # not the missing dataset folder

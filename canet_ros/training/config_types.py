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

"""What each training option takes: one set of rules for its flag and its YAML key.

``--batch-size eight`` is refused by argparse; ``batch_size: eight`` in a --config file (or
in a checkpoint's saved ``train_args``) must be refused by the same rule, in one line and
before any data loads, not deep in torch with a traceback. YAML 1.1 reads ``1e-4`` (no dot)
as text, and 1e-4 is the paper's lr: such numbers are converted as the flag converts them.

Only canet_ros.errors (no torch) is imported here, so the CLI's argparse types
(cli/argtypes.py) are these functions and the training side never imports the CLI.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Any, Callable, Dict, List, Tuple

from ..errors import brief


def int_at_least(text: str, low: int) -> int:
    """Return an integer of at least ``low`` (an argparse usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{brief(text)} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{brief(text)} must be at least {low}")
    return value


def positive_int(text: str) -> int:
    """Return an integer of at least 1."""
    return int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """Return an integer of at least 0."""
    return int_at_least(text, 0)


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device(text: str) -> str:
    """Accept "auto", "cpu", "cuda" or "cuda:N" (whether that device exists is checked later)."""
    value = text.strip().lower()
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"{brief(text)} is not a device: use auto, cpu, cuda or "
                                         f"cuda:N")
    return value


def weights_file(text: str) -> str:
    """Return a weights file's path as given; whether it is one is checked before training."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is no weights file")
    return text


def path_text(text: str) -> str:
    """Return a file or folder path as given, refusing an empty one.

    An unset shell variable (``--resume "$RUN/last.pt"`` is caught by the file check, but
    ``--resume "$LAST"`` is not) would otherwise start a new run, or train from scratch,
    with no word.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no file")
    return text


def parse_val_set(text: str) -> Dict[str, Any]:
    """``heldout=train:0001TP,0006R0`` -> {name, split, include}."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(
            f"--val-sets {brief(text)}: expected NAME=SPLIT[:PREFIXES]")
    name, rest = text.split("=", 1)
    split, _, inc = rest.partition(":")
    return {"name": name, "split": split, "include": [p for p in inc.split(",") if p]}


_AT_LEAST_1 = "an integer of at least 1"
# Options with more form than their field's int/str annotation says: the flag's argparse
# type, and what it takes (for the config file's messages).
FORMS: Dict[str, Tuple[Callable[[str], Any], str]] = {
    "device": (device, "auto, cpu, cuda or cuda:N"),
    "epochs": (positive_int, _AT_LEAST_1), "batch_size": (positive_int, _AT_LEAST_1),
    "eval_batch_size": (positive_int, _AT_LEAST_1), "val_every": (positive_int, _AT_LEAST_1),
    "workers": (non_negative_int, "an integer of at least 0"),
    "threads": (positive_int, _AT_LEAST_1),
    "max_steps_this_run": (positive_int, _AT_LEAST_1),
    "late_crop_epochs": (non_negative_int, "an integer of at least 0"),
    "pretrained_backbone": (weights_file, "true, false or the path of a .pth weights file"),
    **{name: (path_text, "a path (not empty)")
       for name in ("resume", "init_weights", "class_map", "data_root", "replay_root",
                    "export")},
}
# Options that are a switch or a path: true = torchvision's ImageNet weights from the torch
# hub cache, a path = that file (the flag: --pretrained-backbone [FILE]).
SWITCH_OR_PATH = ("pretrained_backbone",)

_PAIR = (2, "[WIDTH, HEIGHT], two positive integers", lambda v: v >= 1)
# Lists of a fixed length (a flag checks them once merged; torch failed on a short mean).
_SHAPES: Dict[str, Tuple[int, str, Callable[[Any], bool]]] = {
    "crop_size": _PAIR, "late_crop_size": _PAIR, "base_size": _PAIR, "input_size": _PAIR,
    "mean": (3, "[R, G, B], three numbers", math.isfinite),
    "std": (3, "[R, G, B], three positive numbers", lambda v: math.isfinite(v) and v > 0),
}
_PLAIN: Dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}
_WHAT = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}
_LIST_OF = {"int": "integers", "float": "numbers", "str": "strings", "bool": "true/false"}
_VAL_SET_KEYS = {"name", "split", "include", "exclude"}
_VAL_SETS = "a list of NAME=SPLIT[:PREFIXES] or {name, split, include, exclude}"


def wrong(name: str, what: str, value: Any) -> ValueError:
    """Return the one error for a value of the wrong form."""
    return ValueError(f"{name}: expected {what}, got {brief(value)}")


def check_value(name: str, hint: str, value: Any) -> Any:
    """Return option ``name``'s ``value`` as its flag would give it, else raise ValueError.

    ``hint`` is the TrainConfig field's annotation as text (``Optional[List[int]]``).
    """
    if name == "val_sets":
        return _val_sets(value)
    if name in SWITCH_OR_PATH:
        return value if isinstance(value, bool) else _scalar(name, "str", value)
    base = next((b for b in ("bool", "int", "float") if b in hint), "str")
    return _list(name, base, value) if "List[" in hint else _scalar(name, base, value)


def _scalar(name: str, base: str, value: Any) -> Any:
    form, what = FORMS.get(name, (_PLAIN.get(base, str), _WHAT[base]))
    if base == "bool":  # YAML has true/false; the flag is --x/--no-x
        if isinstance(value, bool):
            return value
        raise wrong(name, what, value)
    # bool is an int to Python, but `batch_size: true` is no number; a float for an int
    # would be truncated, and text for a path is kept text (`data_root: 5` is a slip).
    if (isinstance(value, bool) or not isinstance(value, (str, int, float))
            or (base == "str" and not isinstance(value, str))
            or (base == "int" and isinstance(value, float))):
        # A path given a number is no string; "not empty" would not be the point.
        raise wrong(name, _WHAT["str"] if form is path_text else what, value)
    try:  # the flag's own conversion of its text: "1e-4" -> 0.0001, "eight" refused
        return form(value if isinstance(value, str) else repr(value))
    except (ValueError, argparse.ArgumentTypeError):
        raise wrong(name, what, value) from None


def _list(name: str, base: str, value: Any) -> List[Any]:
    length, what, sound = _SHAPES.get(name, (0, f"a list of {_LIST_OF[base]}", None))
    if isinstance(value, str) and base == "str":
        value = [value]  # one prefix, as `--train-exclude 0001TP` takes it
    if not isinstance(value, (list, tuple)):
        raise wrong(name, what, value)
    try:
        items = [_scalar(name, base, v) for v in value]
    except ValueError:
        raise wrong(name, what, value) from None
    if sound is not None and (len(items) != length or not all(map(sound, items))):
        raise wrong(name, what, value)
    return items


def _val_sets(value: Any) -> List[Dict[str, Any]]:
    if isinstance(value, (str, dict)):
        value = [value]  # one set, as one --val-sets value
    if not isinstance(value, (list, tuple)):
        raise wrong("val_sets", _VAL_SETS, value)
    return [_val_set(item) for item in value]


def _val_set(item: Any) -> Dict[str, Any]:
    if isinstance(item, str):
        try:
            return parse_val_set(item)
        except argparse.ArgumentTypeError:
            raise wrong("val_sets", _VAL_SETS, item) from None
    # A misspelt key (`includes`) would otherwise score every frame of the split.
    if (not isinstance(item, dict) or not set(item) <= _VAL_SET_KEYS
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("split", ""), str)):
        raise wrong("val_sets", _VAL_SETS, item)
    out = dict(item)
    for key in ("include", "exclude"):
        if out.get(key) is not None:
            try:
                out[key] = _list(key, "str", out[key])
            except ValueError:
                raise wrong("val_sets", _VAL_SETS, item) from None
    return out

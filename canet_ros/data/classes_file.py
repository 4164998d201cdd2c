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

"""``classes.yaml``: the class names, colours and ignore id of a dataset folder.

::

    name: my_camera                  # optional; the folder's name otherwise
    names: [road, sidewalk, car]
    colors: [[128, 64, 128], [244, 35, 232], [0, 0, 142]]
    ignore_index: 255                # mask pixels with this id count for nothing
    split: {val_every: 5}            # optional; used only without train.txt / val.txt

Nothing here imports torch or OpenCV.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import yaml

from ..classes import ClassSet
from ..errors import DatasetError
from .problems import brief, brief_items

CLASSES_FILE = "classes.yaml"
KEYS = ("name", "names", "colors", "ignore_index", "split")
DEFAULT_VAL_EVERY = 5
# Masks are uint8 PNGs: ids 0-254 for classes, so 255 is left for the ignore id.
MAX_MASK_CLASSES = 255


@dataclass(frozen=True)
class SplitRule:
    """Without train/val lists: frames sorted by name, every ``val_every``-th to val.

    Positions ``val_every - 1``, ``2 * val_every - 1``, ... (0-based) go to val, the rest
    to train, so the first frame is always a training frame.
    """

    val_every: int = DEFAULT_VAL_EVERY

    def is_val(self, position: int) -> bool:
        return position % self.val_every == self.val_every - 1

    def as_dict(self) -> dict:
        return {"val_every": self.val_every}


def _color(value: Any) -> Optional[Tuple[int, int, int]]:
    if (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
                    for v in value)):
        return (int(value[0]), int(value[1]), int(value[2]))
    return None


def _names(info: dict, problems: List[str]) -> List[str]:
    names = info.get("names")
    if not isinstance(names, list) or not names:
        problems.append("'names' must be a non-empty list of class names")
        return []
    bad = [n for n in names if not isinstance(n, str) or not n.strip() or ":" in n]
    if bad:
        problems.append(f"'names' holds entries that are not usable class names (text without "
                        f"':'): [{brief_items(bad)}]")
    # Only text names can repeat a class; a list or mapping among them (refused above)
    # cannot even be put in a set.
    counts = Counter(n for n in names if isinstance(n, str))
    twice = sorted(n for n, k in counts.items() if k > 1)
    if twice:
        problems.append(f"'names' lists a class more than once: [{brief_items(twice)}]")
    # Blanks keep the count for the colour check: str() of a bad entry can be huge.
    return [n if isinstance(n, str) else "" for n in names]


def _colors(info: dict, count: int, problems: List[str]) -> List[Tuple[int, int, int]]:
    colors = info.get("colors")
    if not isinstance(colors, list):
        problems.append("'colors' must be a list of [r, g, b] (0-255), one per class")
        return []
    parsed = [_color(c) for c in colors]
    bad = [colors[i] for i, c in enumerate(parsed) if c is None]
    if bad:
        problems.append(f"'colors' holds entries that are not [r, g, b] with 0-255 integers: "
                        f"[{brief_items(bad)}]")
    if count and len(colors) != count:
        problems.append(f"{count} names but {len(colors)} colors; give one colour per class")
    good = [c for c in parsed if c is not None]
    if len(set(good)) != len(good):
        problems.append("two classes share a colour; colour masks could not tell them apart")
    return good


def mask_limit_problem(count: int, ignore: Any) -> Optional[str]:
    """Why ``count`` classes and ``ignore`` cannot be stored in uint8 masks, or None."""
    if count > MAX_MASK_CLASSES:
        return (f"{count} classes do not fit a dataset's masks: they are uint8, so at most "
                f"{MAX_MASK_CLASSES} classes (ids 0-{MAX_MASK_CLASSES - 1}) plus ignore 255")
    if isinstance(ignore, int) and not isinstance(ignore, bool) and not 0 <= ignore <= 255:
        room = "255" if count >= 255 else f"{count}-255 (255 is customary)"
        return (f"ignore id {ignore} does not fit a dataset's masks: they are uint8, so the "
                f"ignore id must be {room}")
    return None


def _ignore(info: dict, count: int, problems: List[str]) -> int:
    ignore = info.get("ignore_index", 255)
    limit = mask_limit_problem(count, 255)
    if limit:
        # No ignore id can help here: saying "use an id past the classes" would send the
        # user to a value the 0-255 check then refuses.
        problems.append(limit)
        return 255
    if not isinstance(ignore, int) or isinstance(ignore, bool) or not 0 <= ignore <= 255:
        problems.append(f"'ignore_index' must be an integer 0-255, not {brief(ignore)}")
        return 255
    if ignore < count:
        problems.append(f"'ignore_index' {ignore} is the id of class {ignore}; use an id past "
                        f"the classes (255 is customary)")
    return ignore


def _split(info: dict, problems: List[str]) -> SplitRule:
    split = info.get("split")
    if split is None:
        return SplitRule()
    every = split.get("val_every") if isinstance(split, dict) else None
    if (not isinstance(split, dict) or set(split) - {"val_every"} or not isinstance(every, int)
            or isinstance(every, bool) or every < 2):
        problems.append(f"'split' must be {{val_every: K}} with K >= 2 (every K-th frame by "
                        f"name goes to val), not {brief(split)}")
        return SplitRule()
    return SplitRule(every)


def parse_classes(path: Path) -> Tuple[Optional[ClassSet], SplitRule, List[str]]:
    """(class set or None, split rule, problems) of one classes.yaml; never raises."""
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, SplitRule(), [f"{path}: missing (the dataset's class names and colours)"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, SplitRule(), [f"{path}: cannot read ({exc})"]
    except yaml.YAMLError as exc:
        why = " ".join(str(exc).split())
        return None, SplitRule(), [f"{path}: not valid YAML ({why})"]
    except RecursionError:  # PyYAML builds nested lists recursively
        return None, SplitRule(), [f"{path}: not usable YAML (nested too deeply)"]
    except ValueError as exc:  # an integer past Python's 4300-digit limit, a 13th month
        why = " ".join(str(exc).split())[:200]
        return None, SplitRule(), [f"{path}: not usable YAML ({why})"]
    if not isinstance(info, dict):
        return None, SplitRule(), [f"{path}: must be a mapping with names, colors, ignore_index"]
    problems: List[str] = []
    # By text: keys of several types (1, foo) do not sort among themselves.
    unknown = sorted(set(info) - set(KEYS), key=str)
    if unknown:
        problems.append(f"unknown keys [{brief_items(unknown)}] (expected {', '.join(KEYS)})")
    name = info.get("name")
    if isinstance(name, (list, dict, set)):
        problems.append(f"'name' must be text, not {brief(name)}")
    names = _names(info, problems)
    colors = _colors(info, len(names), problems)
    ignore = _ignore(info, len(names), problems)
    rule = _split(info, problems)
    if problems:
        return None, rule, [f"{path}: {p}" for p in problems]
    name = str(name or path.parent.name or "custom")
    return ClassSet(name, tuple(names), tuple(colors), ignore), rule, []


def load_classes(path: Any) -> ClassSet:
    """Return the ClassSet a classes.yaml describes; DatasetError names the file and problems."""
    path = Path(path)
    if path.is_dir():
        path = path / CLASSES_FILE
    class_set, _, problems = parse_classes(path)
    if class_set is None:
        raise DatasetError("; ".join(problems))
    return class_set


def classes_yaml(class_set: ClassSet, split: Optional[SplitRule] = None) -> str:
    """classes.yaml text for ``class_set``, one class per line (easy to edit by hand)."""
    lines = [f"name: {_one_line_scalar(class_set.name)}", "names:"]
    lines += [f"  - {_one_line_scalar(n)}" for n in class_set.names]
    lines.append("colors:  # [r, g, b], one per class, in the order of names")
    lines += [f"  - [{r}, {g}, {b}]" for r, g, b in class_set.colors]
    lines.append(f"ignore_index: {class_set.ignore_index}")
    if split is not None:
        lines.append(f"split: {{val_every: {split.val_every}}}")
    return "\n".join(lines) + "\n"


def _one_line_scalar(text: str) -> str:
    """Return ``text`` as a YAML scalar on one line that reads back as ``text``.

    PyYAML folds a long scalar onto a second line (sooner when it escapes non-ASCII), and
    keeps a line break in a quoted one as a line: either would leave half of it behind.
    The double-quoted style escapes line breaks; the width keeps it from folding.
    """
    for style in (None, '"'):
        dumped = yaml.safe_dump(text, default_style=style, allow_unicode=True,
                                width=_NO_FOLDING)
        lines = [line for line in dumped.splitlines() if line != "..."]
        if len(lines) == 1:
            return lines[0]
    raise AssertionError(f"cannot write {text!r} on one line")  # double-quoted always can


_NO_FOLDING = 2 ** 30


def save_classes(path: Any, class_set: ClassSet, split: Optional[SplitRule] = None) -> Path:
    """Write ``classes.yaml`` (``path`` is the file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / CLASSES_FILE
    path.write_text(classes_yaml(class_set, split), encoding="utf-8")
    return path

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

"""Class colours chosen at deployment: a ``class_colors.yaml`` of ``class name: colour``.

A colour is ``[R, G, B]`` (integers 0-255) or a quoted ``"#rrggbb"``. The file may name any
of the model's classes (matched as ``classes.name_key`` matches them: case, ``_`` and
spaces do not matter); the others keep the checkpoint's colours. Reading is in two steps,
so that a tool can check the file before its model loads: :func:`read_class_colors` (the
file alone) then :func:`apply_class_colors` (against the model's classes). No torch here.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional, Tuple, Union

import yaml

from .classes import ClassSet, name_finder, name_key
from .errors import CanetError, brief, brief_items

__all__ = ["ClassColors", "ClassColorsError", "apply_class_colors", "load_class_colors",
           "read_class_colors"]

RGB = Tuple[int, int, int]
_HEX = re.compile(r"#([0-9a-fA-F]{6})\Z")
_LISTED = 50  # class names listed in an unknown-name error


class ClassColorsError(CanetError, ValueError):
    """A class colours file that cannot be used; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class ClassColors:
    """What a class colours file says: (name as written, RGB, line) in file order."""

    path: str
    entries: Tuple[Tuple[str, RGB, int], ...]


def read_class_colors(path: Union[str, os.PathLike]) -> ClassColors:
    """Read and check a class colours file on its own (``~`` expanded); no model needed.

    Raise ClassColorsError for a file that cannot be read, is not YAML, is not a mapping,
    has a value that is not a colour, or names one class twice.
    """
    where = Path(path).expanduser()
    pairs = _yaml_pairs(where, _read_text(where))
    entries, seen = [], {}
    for key, value, line, written in pairs:
        if not isinstance(key, str) and written.strip():  # 1, yes, null: read as non-text
            _fail(where, f"line {line}: YAML reads {brief(written)} unquoted as "
                         f"{brief(key)}, not as a class name; quote it (\"{written}\": ...)")
        if not isinstance(key, str) or not key.strip():
            _fail(where, f"line {line}: {brief(key)} is not a class name")
        if name_key(key) in seen:
            first, first_line = seen[name_key(key)]
            _fail(where, f"line {line}: {brief(key)} names the same class as {brief(first)} "
                         f"on line {first_line}; give each class once")
        seen[name_key(key)] = (key, line)
        entries.append((key, _color(where, key, value, line), line))
    return ClassColors(str(where), tuple(entries))


def apply_class_colors(classes: ClassSet, colors: ClassColors) -> ClassSet:
    """Return ``classes`` with the colours ``colors`` gives (a new ClassSet; the rest kept).

    Raise ClassColorsError naming the file when it names a class ``classes`` lacks.
    """
    ids = _class_ids(classes, colors)
    unknown = [(name, line) for name, _, line in colors.entries if ids[name] is None]
    if unknown:
        named = ", ".join(f"{brief(name, 40)} (line {line})" for name, line in unknown[:5])
        named += f", ... ({len(unknown)} in all)" if len(unknown) > 5 else ""
        verb = "is not a class" if len(unknown) == 1 else "are not classes"
        _fail(Path(colors.path), f"{named} {verb} of this model; its "
                                 f"{classes.num_classes} classes are "
                                 f"{brief_items(list(classes.names), _LISTED)}")
    palette = list(classes.colors)
    for name, rgb, _ in colors.entries:
        palette[ids[name]] = rgb  # type: ignore[index]
    return dataclasses.replace(classes, colors=tuple(palette))


def _class_ids(classes: ClassSet, colors: ClassColors) -> Dict[str, Optional[int]]:
    """Return the class id each name of the file means (exact spelling first), or None.

    A loose name two classes share (``Road`` and ``road``) is refused for a file name that
    does not spell one of them exactly.
    """
    find, ids = name_finder(classes.names), {}
    for name, _, line in colors.entries:
        found = find(name)
        if len(found) > 1:
            spelled = " and ".join(brief(classes.names[i]) for i in found)
            _fail(Path(colors.path), f"line {line}: {brief(name)} matches the classes "
                                     f"{spelled} of this model; write the name exactly as "
                                     f"one of them is spelled")
        ids[name] = found[0] if found else None
    return ids


def load_class_colors(path: Union[str, os.PathLike], classes: ClassSet) -> ClassSet:
    """:func:`read_class_colors` then :func:`apply_class_colors`."""
    return apply_class_colors(classes, read_class_colors(path))


def _fail(path: Path, problem: str) -> NoReturn:
    raise ClassColorsError(f"{path}: class colours: {problem}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        _fail(path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
                    f"{exc.start}); save it as UTF-8")
    except IsADirectoryError:
        _fail(path, "a folder, not a YAML file")
    except FileNotFoundError:
        _fail(path, "no such file")
    except OSError as exc:
        _fail(path, f"cannot read it ({exc.strerror or exc})")


def _yaml_pairs(path: Path, text: str) -> List[Tuple[Any, Any, int, str]]:
    """(key, value, line, key as written) of the top-level mapping, every key kept.

    safe_load would drop repeated keys; the text of a key is kept to say how YAML read it.
    """
    loader = None
    try:
        # The reader refuses control characters (NUL padding) already here.
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
        if root is None:
            _fail(path, "the file is empty; write one 'class name: [R, G, B]' line per class")
        if not isinstance(root, yaml.MappingNode):
            _fail(path, f"not a mapping of class name to colour but "
                        f"{brief(loader.construct_document(root))}")
        loader.flatten_mapping(root)  # '<<: *anchor' merges
        return [(loader.construct_object(k, deep=True), loader.construct_object(v, deep=True),
                 k.start_mark.line + 1, k.value if isinstance(k, yaml.ScalarNode) else "")
                for k, v in root.value]
    except ClassColorsError:
        raise
    except yaml.YAMLError as exc:  # its marks name the text, not the file: this does
        why = " ".join(str(exc).replace('in "<unicode string>", ', "at ").split())
        _fail(path, f"not valid YAML ({why})")
    except RecursionError:  # PyYAML builds nested lists recursively
        _fail(path, "not valid YAML (nested too deeply)")
    except ValueError as exc:  # an integer past Python's digit limit, a 13th month
        _fail(path, f"not valid YAML ({' '.join(str(exc).split())[:200]})")
    finally:
        if loader is not None:
            loader.dispose()


def _color(path: Path, name: str, value: Any, line: int) -> RGB:
    """Return the RGB of one entry's value, or fail naming the entry."""
    if isinstance(value, str) and _HEX.match(value.strip()):
        digits = value.strip()[1:]
        return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    if (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
                    for v in value)):
        return tuple(int(v) for v in value)  # type: ignore[return-value]
    hint = (" (a '#rrggbb' colour must be quoted: unquoted, YAML reads '#' as a comment)"
            if value is None else "")
    _fail(path, f"line {line}: {brief(name)}: {brief(value)} is not a colour; give [R, G, B] "
                f"with integers 0-255 or \"#rrggbb\"{hint}")

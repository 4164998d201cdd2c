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

"""File names written in UTF-8 text, and as Python spells them on disk and on the command line.

Python decodes file names and command-line arguments with the filesystem encoding, which
is not UTF-8 under LC_ALL=C with PYTHONUTF8=0 (ASCII, undecodable bytes as surrogate
escapes) or a Latin-1 locale. Text files (frame lists, CVAT exports, YAML configs) are
UTF-8, so a name read from one is another string than the same name listed from a folder
or typed as a flag. Under a UTF-8 locale both functions return their argument.
"""
from __future__ import annotations

import os
from typing import Any, Callable


def on_disk(text: str) -> str:
    """Return ``text`` (a name as UTF-8 text writes it) as Python spells that name on disk."""
    return os.fsdecode(text.encode("utf-8", "surrogateescape"))


def as_text(name: str) -> str:
    """Return the name ``name`` (as Python spells it on disk) as UTF-8 text writes it.

    The inverse of ``on_disk``: what a file written for people or another locale holds. A
    string no file name decodes to (text that never came from disk) is returned unchanged.
    """
    try:
        return os.fsencode(name).decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return name


def spelled_on_disk(value: Any) -> Any:
    """Return a config file's value with every string in it spelled as a flag gives it.

    Lists and mappings are followed (their keys are option names, left alone); other
    values are returned as they are, for the config checks to refuse by their own rule.
    """
    return _each_string(value, on_disk)


def spelled_as_text(value: Any) -> Any:
    """Return ``value`` with every string in it spelled as UTF-8 text (``as_text``)."""
    return _each_string(value, as_text)


def _each_string(value: Any, spell: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return spell(value)
    if isinstance(value, list):
        return [_each_string(v, spell) for v in value]
    if isinstance(value, dict):
        return {k: _each_string(v, spell) for k, v in value.items()}
    return value

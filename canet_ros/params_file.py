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

"""What a ros__parameters YAML sets for one node, read as rcl reads it (no ROS import).

Sections are keyed by node name patterns (``/**``, ``/cam_front/segmentation_node``,
``/**/segmentation_node``, ``*`` for one name token, ``**`` for any number), written flat
or nested one namespace token per level.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple, Union

import yaml


def sets_parameter(params_file: Union[str, Path], node: str, name: str) -> bool:
    """Tell whether ``params_file`` gives ``name`` to the node whose full name is ``node``.

    A file that cannot be read counts as setting it: the node reports what is wrong.
    """
    try:
        data = yaml.safe_load(Path(params_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True
    target = [t for t in node.split("/") if t]
    return any(name in params and _matches([t for t in pattern if t], target)
               for pattern, params in _sections(data, []))


def unreached_node(params_file: Union[str, Path], node: str) -> Optional[str]:
    """Say why ``params_file`` gives the node ``node`` nothing at all, or None if it gives some.

    rcl applies only the ``ros__parameters`` sections whose key matches the node's full
    name, and ignores the rest without a word: a ``ros2 param dump`` of a node (keyed
    ``/segmentation_node:``) handed to one in a namespace, or an empty file, leaves every
    value at its default. A file that cannot be read is not judged here: the node says
    what is wrong with it.
    """
    return unreached_nodes(params_file, [node])


def unreached_nodes(params_file: Union[str, Path], nodes: List[str]) -> Optional[str]:
    """As :func:`unreached_node` for a file shared by ``nodes``: None if it reaches any."""
    try:
        data = yaml.safe_load(Path(params_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if data is not None and not isinstance(data, dict):
        return None  # not a parameters file at all: rcl refuses it at start-up
    targets = [[t for t in node.split("/") if t] for node in nodes]
    sections = list(_sections(data, []))
    if any(_matches([t for t in pattern if t], target)
           for pattern, _ in sections for target in targets):
        return None
    names = ["/" + "/".join(target) for target in targets]
    keys = ", ".join(dict.fromkeys("/" + "/".join(t for t in p if t) for p, _ in sections))
    which = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return (f"params_file {params_file} has no ros__parameters section for {which} "
            f"({f'its sections: {keys}' if keys else 'it has none'}): none of its values "
            f"would reach {'the node' if len(names) == 1 else 'any of the nodes'}; key them "
            f"/** (every node) or {' or '.join(names) if len(names) == 1 else 'by a full name'}")


def full_node_name(namespace: str, name: str, pushed: Optional[str] = None) -> str:
    """Return the node's full name as launch_ros gives it: '/robot1/cam_front/<name>'.

    A relative (or empty) ``namespace`` goes under the one a PushRosNamespace around the
    include set (``pushed``, the ``ros_namespace`` launch configuration); an absolute one
    does not.
    """
    base = namespace if namespace.startswith("/") else f"{pushed or ''}/{namespace}"
    return "/" + "/".join([t for t in base.split("/") if t] + [name])


def _sections(data: Any, path: List[str]) -> Iterator[Tuple[List[str], dict]]:
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key == "ros__parameters" and isinstance(value, dict):
            yield path, value
        elif isinstance(key, str):
            yield from _sections(value, path + key.split("/"))


def _matches(pattern: List[str], name: List[str]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(rest, name[i:]) for i in range(len(name) + 1))
    return bool(name) and head in ("*", name[0]) and _matches(rest, name[1:])

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

"""Finding and reading ``canet train --config`` files."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import yaml

# Where the docs' repo-relative paths point; the same files ship inside the package.
_SHIPPED_AT = ("canet_ros", "training", "configs")


def shipped_configs() -> Dict[str, Path]:
    """Return the training configs installed with the package, by file name."""
    folder = Path(__file__).resolve().parent / "configs"
    return {p.name: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config(path: Union[str, Path]) -> Path:
    """Return the file ``--config`` names: an existing path, else a shipped config.

    After pip install or colcon build the repo-relative path in the docs does not exist
    where ``canet train`` runs, so that path, or a shipped config's file name (with or
    without ``.yaml``), means the package's copy. An existing file always wins.
    """
    given = Path(path)
    if given.exists():
        return given
    shipped = shipped_configs()
    parts = given.parts
    if parts and not given.is_absolute() and parts[:-1] in ((), _SHIPPED_AT):
        for name in (parts[-1], f"{parts[-1]}.yaml"):
            if name in shipped:
                return shipped[name]
    raise ValueError(f"{path}: config file not found; the configs shipped with canet_ros, "
                     f"named by file name alone: {', '.join(shipped) or 'none'}")


def load_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a --config file (``resolve_config`` finds it) as option: value."""
    path = resolve_config(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: config is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                         f"at position {exc.start}); save it as UTF-8") from None
    # ValueError: an int of more digits than Python converts; RecursionError: deep nesting.
    except (OSError, yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: cannot read config ({str(exc)[:300]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: config must be a mapping of option: value")
    return data

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

"""Where ``canet train`` takes its settings from besides the flags.

On --resume, the run's own saved config (its checkpoint's train_args), and a --config
file; ``config.config_from_args`` lays them over the defaults, and the flags over them. A
run writes its config.yaml with paths relative to the run folder, so a run's config.yaml
is read that way; any other config file's relative paths are read from the working
directory, as the flags' are. (No import of config.py: that imports this.)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from .config_files import load_yaml, resolve_config

# Fields holding file system paths; "default" (the bundled model) is a name, not a path.
# (pretrained_backbone also holds true/false: only a string is a path.)
PATH_FIELDS = ("data_root", "out_dir", "resume", "init_weights", "class_map", "replay_root",
               "export", "pretrained_backbone")
# How one invocation of a run went, not its recipe: a run's config is never taken to mean
# "resume that file" or "stop after that many steps" again.
INVOCATION_ONLY = ("resume", "max_steps_this_run")
# What a run folder holds besides config.yaml (log.csv from its start, then checkpoints).
_RUN_FILES = ("log.csv", "last.pt", "best.pt")


def resolve_train_args(values: Mapping[str, Any], run_dir: Union[str, Path]) -> Dict[str, Any]:
    """Turn saved train_args into usable values: relative paths are taken from ``run_dir``."""
    out = dict(values)
    for name in PATH_FIELDS:
        value = out.get(name)
        # A value of another type is left for check_values to refuse, naming its file.
        if isinstance(value, str) and value and value != "default" \
                and not Path(value).is_absolute():
            out[name] = os.path.normpath(Path(run_dir) / value)
    return out


def run_values(saved: Mapping[str, Any], run_dir: Union[str, Path]) -> Dict[str, Any]:
    """Return a run's saved config as this invocation's base, its paths taken from ``run_dir``.

    ``out_dir`` becomes ``run_dir`` as given (relative stays relative), so messages name the
    run folder the way the user does, and the run goes on in its own folder.
    """
    values = resolve_train_args(saved, Path(run_dir).resolve())
    values["out_dir"] = str(run_dir)
    return {k: v for k, v in values.items() if k not in INVOCATION_ONLY}


def is_run_config(path: Path, values: Mapping[str, Any]) -> bool:
    """Tell whether ``path`` is the config.yaml a run wrote into its folder.

    It is named config.yaml, stores ``out_dir: .`` (the folder itself) and lies beside the
    run's log or checkpoints; a hand-written job file in a run folder is not taken for it.
    """
    return path.name == "config.yaml" and values.get("out_dir") == "." and any(
        (path.parent / name).is_file() for name in _RUN_FILES)


def read_config_file(path: Union[str, Path]) -> Dict[str, Any]:
    """Return a --config file's values (a run's own config.yaml: its paths made usable)."""
    found = resolve_config(path)
    values = load_yaml(found)
    if is_run_config(found, values):
        values = run_values(values, found.parent)
        # That run's exported model is its output: a run started from its recipe must not
        # overwrite it (a resume of that run keeps it from the checkpoint's own config).
        values.pop("export", None)
    return values


def resumed_run_values(resume: Union[str, Path],
                       blob: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Return the saved config of the run that ``resume`` (its last.pt) continues.

    ``blob``: the checkpoint, where the caller has read it. One that cannot continue a run
    (no train_state: best.pt, model.pt) gives nothing; the trainer refuses it.
    """
    if blob is None:
        from ..checkpoint import read_checkpoint

        blob = read_checkpoint(resume)
    if not isinstance(blob.get("train_state"), dict):
        return {}
    return run_values(blob.get("train_args") or {}, Path(resume).parent)

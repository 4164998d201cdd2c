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
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ..fs_names import spelled_on_disk
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


def paths_from_run_folder(saved: Mapping[str, Any]) -> bool:
    """Tell whether saved train_args hold their paths relative to the run folder.

    Runs since paths became run-relative (2026-12-01) store ``out_dir: .``; earlier ones
    stored every path as the user typed it, read from the working directory: their
    ``out_dir`` is the run folder as typed (``runs/a``), and they lack ``holdout``, a key
    that came with the change. Both must say so: train_args with ``holdout`` and another
    ``out_dir`` are a later run's, edited (a moved run's folder written in).
    """
    out_dir = saved.get("out_dir")
    return not isinstance(out_dir, str) or out_dir == "." or "holdout" in saved


def run_values(saved: Mapping[str, Any], run_dir: Union[str, Path]) -> Dict[str, Any]:
    """Return a run's saved config as this invocation's base, its paths taken from ``run_dir``.

    ``out_dir`` becomes ``run_dir`` as given (relative stays relative), so messages name the
    run folder the way the user does, and the run goes on in its own folder. An older run's
    relative paths stay relative to the working directory, as the version that wrote them
    read them: taken from the run folder, ``data_root: tiny`` became ``runs/a/tiny``.
    """
    values = resolve_train_args(saved, Path(run_dir).resolve()) \
        if paths_from_run_folder(saved) else dict(saved)
    for name in PATH_FIELDS:
        # Versions that took `--export ""` saved '' for "not given"; refusing it now (an
        # empty path is a slip) must not strand such a run, whose flags come after this.
        if values.get(name) == "":
            values[name] = None
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
    # UTF-8 text, spelled as the flags are: under LC_ALL=C a `train_exclude: [画像]` was
    # another string than the file names, so it matched nothing, where --train-exclude did.
    values = spelled_on_disk(load_yaml(found))
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


# Options that decide which frames a run trains on or picks best.pt on. A resume keeps the
# run's weights, mean/std and class weights, all learnt from the old frames; changing one
# of these under them would, say, select on and record as held out a drive the run has
# trained on. data_root and replay_root are not here: data sets move. replay_ratio counts
# only as replay on or off (> 0 or not): the ratio sets how many frames of the same pool an
# epoch draws, as --steps sets how long the run is, and the replay_* options of a run
# without replay choose nothing.
FRAME_OPTIONS = ("dataset", "train_split", "train_include", "train_exclude", "holdout",
                 "val_sets", "replay_dataset", "replay_split", "replay_exclude")
_REPLAY_OPTIONS = ("replay_dataset", "replay_split", "replay_exclude")


def check_resumed_frames(resume: Union[str, Path], saved: Mapping[str, Any],
                         asked: Mapping[str, Any], flags: Mapping[str, Any],
                         file_values: Mapping[str, Any], file_name: Any = None) -> None:
    """Refuse a resume whose config trains or selects on other frames than the run did.

    ``saved``: the run's config (defaults filled in), ``asked``: this invocation's merged
    one; ``flags`` and ``file_values`` (the --config file ``file_name``) say who asked, so
    the message names the option as the user gave it. Values are compared normalised
    (lists as sets, None as empty), so giving the run's own value again is fine.
    ValueError: one line naming last.pt, the option, both values and the way out.
    """
    replay = [_replays(saved), _replays(asked)]
    if replay[0] != replay[1]:
        raise ValueError(_changed(resume, "replay_ratio", saved, asked, flags, file_values,
                                  file_name))
    for key in FRAME_OPTIONS:
        if key in _REPLAY_OPTIONS and not replay[0]:
            continue
        if _normal(key, saved.get(key)) != _normal(key, asked.get(key)):
            raise ValueError(_changed(resume, key, saved, asked, flags, file_values,
                                      file_name))


def _replays(values: Mapping[str, Any]) -> bool:
    return bool(values.get("replay_dataset")) and float(values.get("replay_ratio") or 0) > 0


def _names(value: Any) -> Tuple[str, ...]:
    """Return a name filter as a set: the order of prefixes and repeats choose nothing."""
    if value is None or isinstance(value, str):
        value = [value] if value else []
    return tuple(sorted({str(v) for v in value}))


def _normal(key: str, value: Any) -> Any:
    """Return ``value`` in a form where equal choices of frames compare equal."""
    if key == "val_sets":
        return tuple(sorted((str(v.get("name")), str(v.get("split") or "val"),
                             _names(v.get("include")), _names(v.get("exclude")))
                            for v in (value or [])))
    if key.endswith(("_include", "_exclude")):
        return _names(value)
    return str(value).strip() if value not in (None, "") else None


def _shown(key: str, values: Mapping[str, Any]) -> str:
    """Return an option's value as its flag takes it ("none" for nothing)."""
    if key == "replay_ratio":
        ratio = float(values.get("replay_ratio") or 0)
        return f"{ratio:g}" + ("" if _replays(values) else " (no replay)")
    value = _normal(key, values.get(key))
    if key == "val_sets":
        value = [f"{name}={split}" + (":" + ",".join(inc) if inc else "")
                 + (f" (exclude {','.join(exc)})" if exc else "")
                 for name, split, inc, exc in value]
    if isinstance(value, (list, tuple)):
        return " ".join(value) or "none"
    return "none" if value is None else value


def _changed(resume: Any, key: str, saved: Mapping[str, Any], asked: Mapping[str, Any],
             flags: Mapping[str, Any], file_values: Mapping[str, Any], file_name: Any) -> str:
    flag = "--" + key.replace("_", "-")
    given = flag if flags.get(key) is not None else (
        f"{key} in {file_name}" if file_values.get(key) is not None else flag)
    return (f"{resume}: the run trained with {flag} {_shown(key, saved)}, this resume asks "
            f"for {_shown(key, asked)} ({given}); its weights, normalisation and class "
            f"weights come from the frames it chose, so a resume cannot change them: resume "
            f"without {given}, or start a new run from its weights with --init-weights "
            f"{resume} and another --out-dir")

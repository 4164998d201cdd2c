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

"""What ``canet train --resume`` tells before and after it trains.

A run's data folder that is gone (named with the checkpoint it came from), a run with
nothing left to train, and a ``model.pt`` that a version which did not record ``--export``
left from an earlier stop. Messages only: ``cli/train.py`` decides what to do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from .config_sources import paths_from_run_folder, resumed_run_values

# Data folders a run's saved config names, with the flag that gives another.
_ROOTS = (("data_root", "--data-root"), ("replay_root", "--replay-root"))


def missing_data_folder(resume: Any, blob: Mapping[str, Any], asked: Mapping[str, Any],
                        flags: Mapping[str, Any]) -> Optional[str]:
    """Return one line when a data folder taken from ``resume``'s saved config is gone.

    ``asked``: this invocation's config; ``flags``: the parsed flags. Only a folder that
    came from the checkpoint is judged (none given by a flag or to another value in a
    --config file): the data set's own error would name a path the user never typed.
    """
    saved = blob.get("train_args") or {}
    resolved = resumed_run_values(resume, blob)
    for key, flag in _ROOTS:
        value = resolved.get(key)
        if not isinstance(value, str) or not value or flags.get(key) is not None \
                or asked.get(key) != value or Path(value).is_dir():
            continue
        if key == "replay_root" and not (asked.get("replay_dataset")
                                         and float(asked.get("replay_ratio") or 0) > 0):
            continue
        if paths_from_run_folder(saved):
            where = f"{saved.get(key)!r} from the run folder"
            how = f"if the data set moved, give its folder with {flag} DIR"
        else:
            where = "as typed, from the folder the run was started in"
            how = f"resume from that folder, or give the data set's folder with {flag} DIR"
        return (f"{resume}: the run's data folder {value} is not found ({key} in the "
                f"checkpoint's saved config, {where}); {how}")
    return None


def finished_run(resume: Any, state: Mapping[str, Any], asked: Mapping[str, Any]
                 ) -> Optional[str]:
    """Return one line when the run ``resume`` continues has no step left to train.

    ``state``: its train_state; ``asked``: this resume's config. With ``steps`` the run
    ends at that global step, else after ``epochs`` whole epochs (an epoch ends with
    ``step_in_epoch`` back at 0), as the trainer's loop does.
    """
    epoch, done = int(state.get("epoch") or 0), int(state.get("global_step") or 0)
    steps, epochs = asked.get("steps"), int(asked.get("epochs") or 0)
    if not (done >= steps if steps else epoch >= epochs):
        return None
    length = f"{done} of {steps} steps done" if steps else \
        f"{epoch} of {epochs} epochs done, {done} steps"
    weights = Path(resume).parent / "best.pt"
    weights = weights if weights.is_file() else resume
    more = f"--steps above {done}" if steps else f"--epochs above {epoch}"
    return (f"{resume}: the run has already finished ({length}), so there is nothing to "
            f"train; to train more, resume with {more} "
            f"(the poly decay is re-aimed at the new end), or start a new run "
            f"from its weights with --init-weights {weights} and another --out-dir")


def unrecorded_export(resume: Any, blob: Mapping[str, Any], finished: bool) -> Optional[str]:
    """Return one line when ``resume``'s run folder holds a model.pt no export refreshed.

    Versions before export became a config field (2026-12-06) exported at every stop
    with ``--export DST`` but stored neither DST nor the correction strength, so their
    train_args lack the ``export`` key (today's hold ``export: null`` for none). Their
    model.pt, if the run exported there, is an earlier stop's. ``finished``: whether the
    run ended now (else it stopped again; the next last.pt records ``export``, so this is
    the last chance to say it).
    """
    if "export" in (blob.get("train_args") or {}):
        return None
    run = Path(resume).parent
    model = run / "model.pt"
    if not model.is_file():
        return None
    if finished:  # best.pt, else last.pt, as the run's own export picks (no val set: none)
        best = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
        how = (f"export the finished run with canet export --format checkpoint --checkpoint "
               f"{best} --out {model} (and the --prior-correction you used)")
    else:
        how = (f"resume with --export {model} (and the --export-prior-correction you used) "
               f"to export the run when it finishes")
    return (f"note: {model} is not this run's final model: the version that started the run "
            f"did not record its --export, so nothing was exported now and {model.name} is "
            f"from an earlier stop; {how}")

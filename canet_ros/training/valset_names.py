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

"""Validation set names: each set's results are filed under its name, so none may clash."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple


def holdout_set_name(drive: str) -> str:
    """Name of the validation set a ``holdout`` drive becomes."""
    return f"heldout_{drive}"


# Keys best.pt's ``metrics`` holds beside the sets' results (trainer.py's _validate; export.py
# adds prior_correction): a set of such a name would replace the entry or be replaced by it.
RECORD_KEYS = ("epoch", "score", "selection", "ema", "prior_correction")


# A result name's owner: (the set as text, whether the user named it, the raw weights' name).
_Result = Tuple[str, bool, bool]


def val_set_names(cfg: Any) -> List[str]:
    """Return the validation sets' names, the holdout's last; refuse names whose results clash.

    A set's results are filed under its name (``run_validation``, best.pt's ``metrics``) and
    logged as ``<name>_miou`` (with EMA also ``<name>_raw_miou`` for the raw weights): two
    sets of one such name would show one set's figures twice, lose the other's and pick
    best.pt on the wrong score. ValueError names both sets and what to change.
    """
    sets = [(str(v.get("name")), _val_set_text(v), True) for v in cfg.val_sets]
    if cfg.holdout:
        sets.append((holdout_set_name(cfg.holdout), f"the --holdout {cfg.holdout} set", False))
    taken: Dict[str, _Result] = {}
    for name, text, own in sets:
        if name in RECORD_KEYS:
            raise ValueError(f"val_sets: {text}: a set cannot be named {name!r}, best.pt "
                             f"records the run's {name} under that key; give it another name")
        for key, raw in [(name, False)] + ([(f"{name}_raw", True)] if cfg.ema_decay > 0 else []):
            if key in taken:
                raise ValueError(_clash(key, (text, own, raw), taken[key]))
            taken[key] = (text, own, raw)
    return [name for name, _, _ in sets]


def _val_set_text(spec: Mapping[str, Any]) -> str:
    """``name=split:prefix,...``, as the --val-sets flag gives the set."""
    include = ",".join(map(str, spec.get("include") or []))
    return f"{spec.get('name')}={spec.get('split', 'val')}" + (f":{include}" if include else "")


def _clash(key: str, new: _Result, old: _Result) -> str:
    """Return the one line for two sets whose results would both be filed as ``key``."""
    if not (new[2] or old[2]):  # the same name; a holdout's cannot be changed
        fix = ("give each its own name" if new[1] and old[1]
               else "give the --val-sets one another name")
        return (f"val_sets: {old[0]} and {new[0]} are both named {key!r}, so one's results "
                f"would replace the other's (log.csv, the choice of best.pt); {fix}")
    raw, plain = (new, old) if new[2] else (old, new)
    rename = plain if plain[1] else raw
    return (f"val_sets: with ema_decay the raw weights' results of {raw[0]} are logged as "
            f"{key!r}, the name of {plain[0]}, so one would replace the other; give "
            f"{rename[0]} another name (or train without ema_decay)")

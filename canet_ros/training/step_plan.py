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

"""How many optimiser steps a run trains, and how they fall into epochs.

Every epoch has ``steps_per_epoch`` steps but the last of a ``--steps`` run, which stops
short. A resume may ask for other ``--steps`` or ``--epochs`` (or bring data with another
epoch length), so the epochs before it need not have been whole: a finished 5-step run of
3-step epochs, resumed with ``--steps 6``, is in its third epoch at step 5. The plan is
therefore counted from the global step at which the current epoch began, never from
``epoch * steps_per_epoch``; for a run that keeps its recipe the two are the same, so a
stopped and resumed run still trains the steps of an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Tuple


def epoch_start(state: Optional[Mapping[str, Any]]) -> int:
    """Return the global step at which the epoch of a saved ``train_state`` began."""
    if not state:
        return 0
    return int(state.get("global_step") or 0) - int(state.get("step_in_epoch") or 0)


def plan_run(steps: Optional[int], epochs: int, steps_per_epoch: int,
             state: Optional[Mapping[str, Any]] = None) -> Tuple[int, int]:
    """Return ``(total_steps, epochs)`` for a run, resumed from ``state`` if given.

    With ``steps`` the run ends at that global step, in as many epochs as it takes from
    the current one; else it ends after ``epochs`` epochs, the current one and those still
    to come whole, and ``total_steps`` (where the poly decay ends) is the step that is.
    """
    epoch = int(state.get("epoch") or 0) if state else 0
    start = epoch_start(state)
    if steps:
        left = max(0, int(steps) - start)
        return int(steps), epoch + math.ceil(left / steps_per_epoch)
    return start + max(0, epochs - epoch) * steps_per_epoch, epochs


def epoch_steps(total_steps: int, steps_per_epoch: int, start: int) -> int:
    """Return the steps of the epoch that began at global step ``start``."""
    return max(0, min(steps_per_epoch, total_steps - start))

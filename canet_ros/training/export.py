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

"""Turn a run's checkpoint into the shipped form: fp16 weights, no training state."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from ..prior_correction import current_strength, set_prior_correction


def export_checkpoint(src: Union[str, Path], dst: Union[str, Path], half: bool = True,
                      use_ema: bool = True, prior_correction: Optional[float] = None) -> Path:
    """Re-save ``src`` at ``dst`` (atomically), dropping any ``train_state``.

    A ``last.pt`` of a run with ``ema_decay`` carries the averaged weights in its training
    state; with ``use_ema`` those are exported, since they are what the run validates
    (best.pt already holds them). ``prior_correction`` sets the total class-prior
    correction strength (``canet_ros.prior_correction``); None keeps the source's.
    """
    model, meta = load_checkpoint(src)
    state = read_checkpoint(src).get("train_state") or {}
    ema = state.get("ema") if isinstance(state, dict) else None
    if use_ema and ema:
        model.load_state_dict(ema["weights"])
    if prior_correction is not None:
        before = current_strength(meta)
        if set_prior_correction(model, meta, prior_correction, source=str(src)):
            # The run's validation scores were measured before this change; say so.
            metrics = dict(meta.get("metrics") or {})
            metrics.setdefault("prior_correction", before)
            meta["metrics"] = metrics
    return save_checkpoint(dst, model, meta, half=half)

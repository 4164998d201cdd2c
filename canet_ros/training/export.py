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
from typing import Any, Dict, Optional, Union

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
            _record_correction_change(meta, before, current_strength(meta))
    return save_checkpoint(dst, model, meta, half=half)


def _record_correction_change(meta: Dict[str, Any], before: float, after: float) -> None:
    """Keep the source's figures from passing as this file's once its bias has changed.

    ``metrics`` (the training run's) and ``evaluation`` (measured on the source file) were
    scored with correction ``before``; the new bias scores differently (68.8 -> 65.1 mIoU
    for the bundled model at 0). ``evaluation`` moves to ``source_evaluation`` with the
    strength it was measured at, so nothing reading ``evaluation`` takes it for this file's.
    """
    metrics = dict(meta.get("metrics") or {})
    metrics.setdefault("prior_correction", before)
    meta["metrics"] = metrics
    evaluation = meta.pop("evaluation", None)
    # A source without ``evaluation`` but with ``source_evaluation`` (itself such an export)
    # keeps the latter: those figures still name the file and strength they were measured at.
    if evaluation:
        meta["source_evaluation"] = {**evaluation, "prior_correction": before}
    change = f"canet export changed the class-prior correction from {before:g} to {after:g}"
    history = meta.get("history")
    meta["history"] = f"{history}; then {change}" if history else change

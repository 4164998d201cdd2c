"""Turn a run's checkpoint into the shipped form: fp16 weights, no training state."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ..checkpoint import load_checkpoint, read_checkpoint, save_checkpoint


def export_checkpoint(src: Union[str, Path], dst: Union[str, Path], half: bool = True,
                      use_ema: bool = True) -> Path:
    """Re-save ``src`` at ``dst`` (atomically), dropping any ``train_state``.

    A ``last.pt`` of a run with ``ema_decay`` carries the averaged weights in its training
    state; with ``use_ema`` those are exported, since they are what the run validates
    (best.pt already holds them).
    """
    model, meta = load_checkpoint(src)
    state = read_checkpoint(src).get("train_state") or {}
    ema = state.get("ema") if isinstance(state, dict) else None
    if use_ema and ema:
        model.load_state_dict(ema["weights"])
    return save_checkpoint(dst, model, meta, half=half)

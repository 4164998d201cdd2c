"""Turn a run's best.pt into the shipped form: fp16 weights, no training state."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ..checkpoint import load_checkpoint, save_checkpoint


def export_checkpoint(src: Union[str, Path], dst: Union[str, Path], half: bool = True) -> Path:
    """Re-save ``src`` at ``dst`` (atomically), dropping any ``train_state``."""
    model, meta = load_checkpoint(src)
    return save_checkpoint(dst, model, meta, half=half)

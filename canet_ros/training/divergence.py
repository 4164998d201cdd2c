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

"""A diverged run stops; a batch with no labelled pixel is no divergence.

Cross-entropy over a crop whose every pixel is the ignore id is 0/0 = nan, with zero
gradients: a crop of a frame labelled only in part (the road, say). Such a batch adds 0 to
the loss, with zero gradients, and is left out of the epoch's mean train_loss.

A non-finite loss on a batch with labelled pixels, or non-finite weights, is divergence
(an lr far too high): the run stops with one line before it writes a checkpoint, so the
last.pt written before stays the last finite one (finite, not necessarily trainable:
weights that were blowing up may diverge again from there at any lr). Steps the AMP
gradient scaler skips for inf gradients are its normal work, not divergence. Checking the
loss costs nothing (it is read every step anyway); the weights are checked only before
validating and saving.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional, Tuple

import torch
from torch import nn

from ..errors import CanetError


class TrainingDiverged(CanetError):
    """The loss or the weights of a training run became inf or nan."""


def labelled_loss(criterion: nn.CrossEntropyLoss, logits: torch.Tensor, labels: torch.Tensor
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, labelled): the batch's loss, 0 where no pixel is labelled (ignore id).

    ``labelled`` is a 0-dim bool tensor on the labels' device (no wait for the device here).
    Class weights are positive (config.check_class_weights), so a labelled pixel always
    gives the weighted mean a non-zero denominator.
    """
    loss = criterion(logits, labels)
    labelled = (labels != criterion.ignore_index).any()
    # where(): the nan of an empty mean is dropped and its zero gradients pass unchanged.
    return torch.where(labelled, loss, torch.zeros_like(loss)), labelled


def finite_weights(models: Iterable[Optional[nn.Module]]) -> bool:
    """Whether every floating-point parameter and buffer (BN statistics too) is finite.

    A ``ModelEMA`` counts by its averaged ``module``; None entries are skipped.
    """
    modules = [getattr(m, "module", m) for m in models if m is not None]
    checks = [torch.isfinite(t).all() for m in modules for t in m.state_dict().values()
              if t.is_floating_point()]
    return bool(torch.stack(checks).all()) if checks else True


def diverged(what: str, step: int, lr: Optional[float], run_dir: Path) -> TrainingDiverged:
    """Return the one-line error for a run that diverged at ``step`` training with ``lr``."""
    last = Path(run_dir) / "last.pt"
    # Not "good" weights: finite ones may already have grown too large to train on from
    # (no threshold on their size holds for every model), so say what to do if they have.
    resume = (f"; --resume {last} --lr LOWER goes on from the last weights written; if that "
              f"diverges again, start a new run with a lower --lr" if last.is_file() else "")
    at = f"lr {lr:.2e}" if lr is not None else "lr unknown"
    return TrainingDiverged(f"training diverged at step {step} ({at}): {what}; "
                            f"lower --lr{resume}")


def check_weights(models: Iterable[Optional[nn.Module]], step: int, stats: Any,
                  run_dir: Path) -> None:
    """Raise TrainingDiverged where a weight is inf or nan; ``stats``: the EpochStats or None.

    Under DDP every rank holds the same weights, so every rank raises together.
    """
    if not finite_weights(models):
        lr = getattr(stats, "lr", None)
        raise diverged("the weights are no longer finite", step, lr, run_dir)


def check_run(trainer: Any) -> None:
    """Check a Trainer's weights (model and EMA) at its current step; see ``check_weights``."""
    check_weights([trainer.bare_model, trainer.ema], trainer.global_step,
                  trainer._epoch_stats, trainer.run_dir)

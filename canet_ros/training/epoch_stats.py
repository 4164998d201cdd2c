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

"""What one epoch's log row averages: loss sum, images and training time so far.

It also keeps the lr the epoch's latest step trained with, the row's ``lr``: by the epoch's
end the optimiser already holds the next step's (0 after the run's last step).

It is part of ``last.pt``'s train_state, so a run stopped and resumed mid-epoch logs the
same train_loss for that epoch as a run that never stopped, not the mean of the steps
after the resume only.

A batch with no labelled pixel has no loss (``divergence.labelled_loss``): its images count
for the throughput but not in the mean loss, which is over the batches with a loss.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, Mapping, Optional


class EpochStats:
    """Running loss sum (loss x images), image counts, seconds and latest lr of an epoch."""

    def __init__(self, loss_sum: float = 0.0, images: int = 0, seconds: float = 0.0,
                 lr: Optional[float] = None, loss_images: Optional[float] = None):
        self.loss_sum = float(loss_sum)
        self.images = int(images)
        # Images of the batches with a loss; saved by an older version: all of them.
        self.loss_images = float(images if loss_images is None else loss_images)
        self.lr = lr
        # Time before a stop counts, the time between the stop and the resume does not.
        # A monotonic clock: the wall clock steps (NTP setting it at a robot's boot), and an
        # epoch it stepped -1 h in logged epoch_s -3599 and 1e10 images/s.
        self._start = time.monotonic() - float(seconds)

    def add(self, loss: Optional[float], images: int, lr: float) -> None:
        """Account one step: its mean loss over ``images`` frames and the lr it trained with.

        ``loss`` None: the batch had no labelled pixel, so no loss to average.
        """
        if loss is not None:
            self.loss_sum += loss * images
            self.loss_images += images
        self.images += images
        self.lr = float(lr)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._start

    @property
    def mean_loss(self) -> float:
        """Return the mean loss of the batches with a loss; nan where no batch had one."""
        return self.mean_over(lambda v: v)

    def mean_over(self, reduce: Callable[[float], float]) -> float:
        """Return the mean loss with sum and count each passed through ``reduce`` (DDP ranks)."""
        images = reduce(self.loss_images)
        loss_sum = reduce(self.loss_sum)
        return loss_sum / images if images > 0 else math.nan

    def state_dict(self) -> Dict[str, Any]:
        return {"loss_sum": self.loss_sum, "images": self.images, "seconds": self.seconds,
                "lr": self.lr, "loss_images": self.loss_images}

    @classmethod
    def from_state(cls, state: Optional[Mapping[str, Any]]) -> Optional[EpochStats]:
        """Rebuild from ``state_dict()``; None for no state.

        No state: saved at an epoch boundary, or by an older version that did not save it
        (that epoch's row then counts from the resume on).
        """
        if not state:
            return None
        return cls(state["loss_sum"], state["images"], state["seconds"], state.get("lr"),
                   state.get("loss_images"))

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
"""
from __future__ import annotations

import time
from typing import Any, Dict, Mapping, Optional


class EpochStats:
    """Running loss sum (loss x images), image count, seconds and latest lr of an epoch."""

    def __init__(self, loss_sum: float = 0.0, images: int = 0, seconds: float = 0.0,
                 lr: Optional[float] = None):
        self.loss_sum = float(loss_sum)
        self.images = int(images)
        self.lr = lr
        # Time before a stop counts, the time between the stop and the resume does not.
        # A monotonic clock: the wall clock steps (NTP setting it at a robot's boot), and an
        # epoch it stepped -1 h in logged epoch_s -3599 and 1e10 images/s.
        self._start = time.monotonic() - float(seconds)

    def add(self, loss: float, images: int, lr: float) -> None:
        """Account one step: its mean loss over ``images`` frames and the lr it trained with."""
        self.loss_sum += loss * images
        self.images += images
        self.lr = float(lr)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._start

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.images, 1)

    def state_dict(self) -> Dict[str, Any]:
        return {"loss_sum": self.loss_sum, "images": self.images, "seconds": self.seconds,
                "lr": self.lr}

    @classmethod
    def from_state(cls, state: Optional[Mapping[str, Any]]) -> Optional[EpochStats]:
        """Rebuild from ``state_dict()``; None for no state.

        No state: saved at an epoch boundary, or by an older version that did not save it
        (that epoch's row then counts from the resume on).
        """
        if not state:
            return None
        return cls(state["loss_sum"], state["images"], state["seconds"], state.get("lr"))

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

"""Run logs: a CSV file (always) and TensorBoard scalars (when tensorboard is installed)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, Optional

FIELDS = ("epoch", "step", "train_loss", "lr", "images_per_s", "epoch_s", "score")


class RunLog:
    """Appends one CSV row per epoch; resumed runs keep appending to the same file."""

    def __init__(self, run_dir: Path, val_names: list, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "log.csv"
        self.fields = list(FIELDS) + [f"{n}_miou" for n in val_names] + \
            [f"{n}_global_acc" for n in val_names]
        self.writer: Optional[Any] = None
        if not enabled:
            return
        if not self.path.exists():
            with self.path.open("w", newline="") as fh:
                csv.DictWriter(fh, self.fields).writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(Path(run_dir) / "tb"))
        except ImportError:  # tensorboard is optional at run time
            self.writer = None

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def row(self, values: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, self.fields, extrasaction="ignore").writerow(values)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

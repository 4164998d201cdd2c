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
import io
import logging
from pathlib import Path
from typing import Any, Dict, Optional

from ..atomic_write import write_atomic, write_error

FIELDS = ("epoch", "step", "train_loss", "lr", "images_per_s", "epoch_s", "score")
# Said once per run where tensorboard is missing: docs/training.md lists tb/ in every run.
NOT_WRITTEN = "TensorBoard scalars not written (tb/)"
NO_TENSORBOARD = (f"{NOT_WRITTEN}: tensorboard is not installed (pip install tensorboard, "
                  "or canet_ros[train])")


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
        self.writer = _summary_writer(Path(run_dir) / "tb")

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def row(self, values: Dict[str, Any]) -> None:
        """Append one epoch's row; it is on disk (closed) before this returns.

        The trainer writes it before the checkpoint that marks the epoch done, so a kill
        between the two leaves a row that ``drop_rows_after`` removes on resuming.
        """
        if not self.enabled:
            return
        try:
            with self.path.open("a", newline="") as fh:
                csv.DictWriter(fh, self.fields, extrasaction="ignore").writerow(values)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        if self.writer is not None:
            self.writer.flush()

    def drop_rows_after(self, epoch: int) -> int:
        """Remove the rows of epochs after ``epoch`` (a resumed checkpoint's); return how many.

        Those epochs are run again, so their rows would otherwise appear twice.
        """
        if not self.enabled or not self.path.is_file():
            return 0
        with self.path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows or "epoch" not in rows[0]:
            return 0
        col = rows[0].index("epoch")
        keep = [r for r in rows[1:] if not _epoch_after(r, col, epoch)]
        dropped = len(rows) - 1 - len(keep)
        if dropped:
            text = io.StringIO(newline="")
            csv.writer(text).writerows([rows[0], *keep])
            write_atomic(self.path, lambda fh: fh.write(text.getvalue().encode()))
        return dropped

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _summary_writer(folder: Path) -> Optional[Any]:
    """Return TensorBoard's writer for ``folder``; None, with a warning, without tensorboard."""
    from ..versions import import_optional

    # torch's wrapper raises a bare ImportError without tensorboard: ask for it first.
    log = logging.getLogger("canet_ros.training")
    module, broken = import_optional("tensorboard", "tensorboard")
    if module is None:
        log.warning(f"{NOT_WRITTEN}: {broken}" if broken else NO_TENSORBOARD)
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # a tensorboard torch cannot use (older than 1.15)
        log.warning("%s: %s", NOT_WRITTEN, exc)
        return None
    return SummaryWriter(str(folder))


def _epoch_after(row: list, col: int, epoch: int) -> bool:
    try:
        return int(row[col]) > epoch
    except (IndexError, ValueError):  # not an epoch row: kept as it was
        return False

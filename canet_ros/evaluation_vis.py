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

"""canet evaluate --save-vis: frame | truth | prediction pictures and the two charts.

Kept apart from the scoring (``evaluation``) so drawing never sits in its way; nothing
here imports matplotlib until a chart is drawn.
"""
from __future__ import annotations

import contextlib
import logging
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

import numpy as np
import torch

from .metrics import ConfusionMatrix

BatchHook = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
log = logging.getLogger("canet_ros.evaluation")


class VisHook:
    """Per-batch hook saving the first ``count`` frames as frame | truth | prediction.

    Each is ``<index>_<stem>.png``, shortened as segment-bag's outputs are where that passes
    the 255 bytes a file name may have. A picture never costs the scores: one that cannot
    be written is a warning naming it and why, and is counted in :meth:`tally`.
    """

    def __init__(self, dataset: Any, palette: np.ndarray, ignore_index: int, out_dir: str,
                 count: int) -> None:
        self.dataset, self.palette, self.ignore_index = dataset, palette, ignore_index
        self.out_dir, self.count = Path(out_dir), count
        self.written = self.not_written = 0

    def __call__(self, first: int, images: torch.Tensor, labels: torch.Tensor,
                 preds: torch.Tensor) -> None:
        from .bag.outdir import fit_name
        from .visualize import save_rgb, side_by_side

        for k in range(preds.shape[0]):
            index = first + k
            if index >= self.count:
                return
            frame, gt = self.dataset.load(index)
            stem = Path(self.dataset.pairs[index][0]).stem
            path = self.out_dir / fit_name(f"{index:03d}_{stem}", ".png")
            try:
                save_rgb(side_by_side(frame, gt, preds[k].numpy(), self.palette,
                                      self.ignore_index), path)
            except OSError as exc:
                _not_written(path, exc)
                self.not_written += 1
            else:
                self.written += 1

    def tally(self) -> Dict[str, int]:
        """Return how many frame pictures were written and how many could not be."""
        return {"written": self.written, "not_written": self.not_written}


def vis_hook(dataset: Any, palette: np.ndarray, ignore_index: int, out_dir: str, count: int
             ) -> VisHook:
    """Return a :class:`VisHook` saving the first ``count`` frames of ``dataset``."""
    return VisHook(dataset, palette, ignore_index, out_dir, count)


def _not_written(path: Path, exc: OSError) -> None:
    """Warn that a picture was not written; remove what a full disk left of it."""
    with contextlib.suppress(OSError):
        path.unlink()  # a cut-short PNG, or an older run's picture this run did not replace
    log.warning("--save-vis: %s not written (%s); the scores are complete", path,
                exc.strerror or exc)


def check_vis_folder(folder: Path) -> None:
    """Create the --save-vis folder and write a file there, or say why that cannot be done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".canet_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--save-vis {folder}: cannot write there "
                         f"({exc.strerror or exc})") from None


def save_charts(result: Dict[str, Any], cm: ConfusionMatrix, names: Sequence[str],
                folder: Path, what: str) -> None:
    """Draw the two charts, or warn once and say why in the result's ``chart_error``.

    matplotlib is optional; as in segment-bag, a chart must never cost the scores. ``what``
    names the frames scored, as the text output does: a subset's score is not a split's.
    """
    frames = int(result["frames"])
    what = textwrap.fill(f"{what} ({frames} frame{'' if frames == 1 else 's'})", 70)
    iou, matrix = folder / "per_class_iou.png", folder / "confusion_matrix.png"
    pending = [iou, matrix]
    try:
        from .visualize import save_confusion_matrix, save_iou_bar_chart

        save_iou_bar_chart(result["per_class"], iou,
                           f"{what}: mIoU {100 * float(result['miou']):.1f}%", names)
        pending.remove(iou)
        save_confusion_matrix(cm.matrix, names, matrix,
                              f"{what}\nconfusion matrix (rows: ground truth, % of row)")
        pending.remove(matrix)
    except Exception as exc:
        for path in pending:  # a cut-short chart, or an older run's this run did not replace
            with contextlib.suppress(OSError):
                path.unlink()
        result["chart_error"] = f"{type(exc).__name__}: {exc}"
        log.warning("--save-vis: charts not drawn in %s (%s); the scores are complete",
                    folder, result["chart_error"])

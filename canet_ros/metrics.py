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

"""Segmentation metrics over one confusion matrix (paper eq. 1)."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import numpy as np


class ConfusionMatrix:
    """Accumulates a num_classes x num_classes matrix; rows = ground truth, cols = prediction.

    Pixels whose ground truth is the ignore index (or outside [0, num_classes)) are
    excluded. IoU = TP / (TP + FP + FN); a class absent from both prediction and
    ground truth has no IoU and is left out of the mean.
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int] = None):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        # Ground-truth pixels whose prediction is not a class at all (false negatives only).
        self.unmatched = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground truth shape {target.shape}")
        if pred.dtype == np.uint8 and target.dtype == np.uint8:
            self._update_uint8(pred, target)
            return
        t = target.reshape(-1).astype(np.int64)
        p = pred.reshape(-1).astype(np.int64)
        keep = (t >= 0) & (t < self.num_classes)
        if self.ignore_index is not None:
            keep &= t != self.ignore_index
        # A prediction outside the class range is a miss for its ground-truth class.
        p = np.where((p >= 0) & (p < self.num_classes), p, -1)
        t, p = t[keep], p[keep]
        valid = p >= 0
        n = self.num_classes
        self.matrix += np.bincount(t[valid] * n + p[valid], minlength=n * n).reshape(n, n)
        self.unmatched += np.bincount(t[~valid], minlength=n)

    def _update_uint8(self, pred: np.ndarray, target: np.ndarray) -> None:
        # Label images (segment-bag's, ground truth PNGs): one 65536-bin count of
        # truth * 256 + prediction, sliced, is 4-10x faster than masking int64 copies.
        code = (target.reshape(-1).astype(np.uint16) << 8) | pred.reshape(-1)
        counts = np.bincount(code, minlength=1 << 16).reshape(256, 256)  # [truth, pred]
        m = min(self.num_classes, 256)
        rows = counts[:m]
        if self.ignore_index is not None and 0 <= self.ignore_index < m:
            rows = rows.copy()
            rows[self.ignore_index] = 0
        self.matrix[:m, :m] += rows[:, :m]
        self.unmatched[:m] += rows[:, m:].sum(axis=1)

    def merge(self, other: ConfusionMatrix) -> None:
        self.matrix += other.matrix
        self.unmatched += other.unmatched

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN where a class is absent from prediction and ground truth."""
        tp = np.diag(self.matrix).astype(np.float64)
        fn = self.matrix.sum(axis=1) - tp + self.unmatched
        fp = self.matrix.sum(axis=0) - tp
        denom = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def global_accuracy(self) -> float:
        """Correct pixels over all evaluated pixels (the paper's 'Global avg.')."""
        total = self.matrix.sum() + int(self.unmatched.sum())
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def summary(self, class_names: Sequence[str]) -> Dict[str, object]:
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        iou = self.iou()
        per_class = {name: float(v) for name, v in zip(class_names, iou, strict=True)
                     if np.isfinite(v)}
        return {
            "miou": self.miou(),
            "global_acc": self.global_accuracy(),
            "per_class": per_class,
            "pixels": int(self.matrix.sum()),
        }


def clean_json(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so the file is strict JSON."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

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

"""``canet benchmark --tta``: what test-time augmentation costs the offline tools.

Times the code that runs: ``predict_labels`` (fp32 torch, with and without TTA), which
``canet evaluate`` runs for multi-scale TTA and ``--prior-correction``, and the engine's
flip TTA on its own runtime (``canet segment-bag --tta``, ``canet evaluate --tta``) against
the same engine without it, all in one interleaved loop so the ratios share the machine's
state.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..evaluation import TTA, predict_labels
from ..inference import SegmentationEngine

__all__ = ["tta_fns", "tta_report"]


def tta_fns(engine: SegmentationEngine, x_model: Any, scales: Sequence[float],
            pipeline_tta: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """Return timed calls: evaluate's prediction without TTA, with flip, with flip + ``scales``.

    ``pipeline_tta`` runs the frame pipeline (labels only) on an engine built with
    ``tta=True``; it is compared with the plain engine's ``pipeline_labels``.
    """
    model = copy.deepcopy(engine.model).float().to(engine.device).eval()
    model.to(memory_format=torch.contiguous_format)  # as canet evaluate runs it
    x_np = x_model if isinstance(x_model, np.ndarray) else \
        x_model.float().contiguous().cpu().numpy()
    x = torch.from_numpy(np.ascontiguousarray(x_np)).to(engine.device)
    out_size = (engine.resolution[1], engine.resolution[0])
    fns: dict[str, Callable[[], Any]] = {
        "offline_labels": lambda: predict_labels(model, x, out_size),
        "offline_tta_flip": lambda: predict_labels(model, x, out_size, tta=TTA()),
        "pipeline_labels_tta": pipeline_tta,
    }
    if tuple(scales) != (1.0,):
        multi = TTA(flip=True, scales=tuple(scales))
        fns["offline_tta_scales"] = lambda: predict_labels(model, x, out_size, tta=multi)
    return fns


def tta_report(med: dict[str, float], scales: Sequence[float]) -> dict[str, Any]:
    """Return the ``tta`` block of the benchmark report from the medians (ms) of one run."""
    plain = med["offline_labels"]
    report: dict[str, Any] = {
        "scales": [float(s) for s in scales],
        "offline_labels_ms": plain,
        "offline_tta_flip_ms": med["offline_tta_flip"],
        "offline_tta_flip_over_plain": med["offline_tta_flip"] / plain,
        "pipeline_labels_tta_ms": med["pipeline_labels_tta"],
        "pipeline_labels_tta_over_plain":
            med["pipeline_labels_tta"] / med["pipeline_labels"],
    }
    if "offline_tta_scales" in med:
        report["offline_tta_scales_passes"] = TTA(flip=True, scales=tuple(scales)).passes
        report["offline_tta_scales_ms"] = med["offline_tta_scales"]
        report["offline_tta_scales_over_plain"] = med["offline_tta_scales"] / plain
    return report

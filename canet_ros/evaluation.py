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

"""Evaluation: one confusion matrix over a whole split (paper eq. 1 and Table 4).

Frames are fed at the network resolution; logits are upsampled bilinearly to the ground
truth's full size before the argmax, so scores are always at label resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from .class_colors import ClassColors, apply_class_colors
from .classes import ClassSet
from .evaluation_scope import (  # noqa: F401 (holdout_scope: part of this module's API)
    engine_path,
    holdout_scope,
    refuse_torch_precision,
    run_dir,
    scoring_data,
)
from .evaluation_vis import BatchHook, check_vis_folder, save_charts, vis_hook
from .metrics import ConfusionMatrix
from .progress import progress
from .training.workers import StopSafeLoader


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: horizontal flip and/or input scales, probabilities averaged.

    Offline use only (``canet evaluate``, ``canet segment-bag``): it multiplies the cost by
    ``len(scales) * (2 if flip else 1)``; the node never uses it.
    """

    flip: bool = True
    scales: Tuple[float, ...] = (1.0,)

    @property
    def passes(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)


def _upsample(logits: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _forward(model: nn.Module, images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return model(images).float()


def tta_probabilities(model: nn.Module, images: torch.Tensor, out_size: Tuple[int, int],
                      tta: TTA, *, channels_last: bool = False) -> torch.Tensor:
    """Mean softmax (N, C, H, W) at ``out_size`` over the flips and scales of ``tta``."""
    h, w = images.shape[-2:]
    total = None
    for scale in tta.scales:
        size = (max(8, round(h * scale)), max(8, round(w * scale)))
        x = images if size == (h, w) else F.interpolate(
            images, size=size, mode="bilinear", align_corners=False)
        views = [(x, False)] + ([(x.flip(-1), True)] if tta.flip else [])
        for view, flipped in views:
            logits = _forward(model, view, channels_last)
            if flipped:
                logits = logits.flip(-1)
            prob = _upsample(logits, out_size).softmax(1)
            total = prob if total is None else total.add_(prob)
    return total.div_(tta.passes)


@torch.no_grad()
def predict_labels(model: nn.Module, images: torch.Tensor, out_size: Tuple[int, int], *,
                   channels_last: bool = False, tta: Optional[TTA] = None) -> torch.Tensor:
    """Class ids (N, H, W) at ``out_size`` = (H, W) for normalised images (N, 3, h, w)."""
    if tta is not None:
        return tta_probabilities(model, images, out_size, tta,
                                 channels_last=channels_last).argmax(1)
    return _upsample(_forward(model, images, channels_last), out_size).argmax(1)


Batch = Tuple[torch.Tensor, torch.Tensor]


def collate_same_size(samples: Sequence[Batch]) -> List[Batch]:
    """Collate (image, label) samples into runs of consecutive same-sized frames, in order.

    Labels stay at their own size (``EvalTransform``), so frames of different sizes
    cannot share a tensor; each run is stacked on its own and scored as if alone.

    ``default_collate`` stacks them: in a DataLoader worker it builds the batch in shared
    memory, so a full /dev/shm fails there and reaches the main process as an error. A
    batch stacked in ordinary memory is copied into /dev/shm later, by the worker queue's
    feeder thread, whose error nobody sees: the main process then waited forever.
    """
    runs: List[List[Batch]] = []
    for image, label in samples:
        if runs and (runs[-1][0][0].shape, runs[-1][0][1].shape) == (image.shape, label.shape):
            runs[-1].append((image, label))
        else:
            runs.append([(image, label)])
    return [(default_collate([s[0] for s in run]), default_collate([s[1] for s in run]))
            for run in runs]


def eval_loader(dataset: Dataset, batch_size: int, workers: int = 0, pin_memory: bool = False
                ) -> DataLoader:
    """In-order DataLoader for ``evaluate_loader`` that copes with frames of mixed sizes.

    Its workers leave Ctrl-C and SIGTERM to the main process (``training.workers``).
    """
    return StopSafeLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                          pin_memory=pin_memory, collate_fn=collate_same_size)


def _runs(batch) -> List[Batch]:
    """Split a loader's batch into same-size runs (``collate_same_size``'s, or one pair)."""
    if isinstance(batch, list) and batch and isinstance(batch[0], tuple):
        return batch
    images, labels = batch
    return [(images, labels)]


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: DataLoader, num_classes: int,
                    ignore_index: Optional[int], device: torch.device, *,
                    channels_last: bool = False, on_batch: Optional[BatchHook] = None,
                    tta: Optional[TTA] = None, show_progress: bool = False
                    ) -> ConfusionMatrix:
    """Accumulate predictions vs. labels over ``loader`` (image, label) batches.

    A batch may also be ``collate_same_size``'s list of same-size runs (``eval_loader``).

    ``on_batch(first_index, images, labels, preds)`` lets callers save visualisations
    without a second pass.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    seen = 0
    bar = progress(total=len(loader.dataset), desc="evaluate", unit="frame",
                   disable=not show_progress)
    try:
        for batch in loader:
            for images, labels in _runs(batch):
                images = images.to(device, non_blocking=True)
                preds = predict_labels(model, images, tuple(labels.shape[-2:]),
                                       channels_last=channels_last, tta=tta).cpu()
                cm.update(preds.numpy(), labels.numpy())
                if on_batch is not None:
                    on_batch(seen, images.cpu(), labels, preds)
                seen += images.shape[0]
                bar.update(images.shape[0])
    finally:
        bar.close()
        model.train(was_training)
    return cm


def summarize(cm: ConfusionMatrix, class_names: Sequence[str], frames: int) -> Dict[str, object]:
    """JSON-ready result: fractions in [0, 1]; classes absent from the split are omitted."""
    out = cm.summary(class_names)
    out["frames"] = int(frames)
    return out


def format_table(result: Dict[str, object], class_names: Sequence[str]) -> str:
    """Readable per-class table with percentages."""
    per_class = result.get("per_class", {})
    width = max(len(n) for n in class_names) + 2
    lines = [f"{'class':<{width}}  IoU (%)"]
    for name in class_names:
        v = per_class.get(name)  # type: ignore[union-attr]
        lines.append(f"{name:<{width}}  {'   n/a' if v is None else f'{100 * v:6.2f}'}")
    lines.append("-" * (width + 9))
    lines.append(f"{'mIoU':<{width}}  {100 * float(result['miou']):6.2f}")
    lines.append(f"{'global acc':<{width}}  {100 * float(result['global_acc']):6.2f}")
    lines.append(f"frames: {result['frames']}")
    return "\n".join(lines)


def scored_set(dataset: str, split: str, include: Optional[Sequence[str]] = None,
               exclude: Optional[Sequence[str]] = None) -> str:
    """Name what was scored, name filters included (text output and chart titles alike)."""
    words = [dataset, split] + ([",".join(include)] if include else [])
    return " ".join(words + (["without " + ",".join(exclude)] if exclude else []))


def seen_in_training(train_args: Dict[str, object], frames: Sequence[Path],
                     run_dir: Optional[Path] = None,
                     lineage: Optional[Mapping[str, Any]] = None) -> Optional[int]:
    """How many of these frame files the checkpoint's weights trained on (None: not recorded).

    Judged from the run's saved data set, split(s), name filters and replay source, and
    from every run its starting weights (``--init-weights``) came from, which tells a
    held-out score from a training-set one (``canet_ros.data.seen``). ``run_dir`` is where
    the checkpoint's relative paths start: its run folder. ``lineage`` is the checkpoint's
    record of those starting weights and a dataset folder's trained frames.
    """
    from .data.seen import count_seen

    return count_seen(train_args, frames, run_dir, lineage)


def parse_resolution(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """``"480x360"`` -> (480, 360); None/"" -> None."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"resolution {text!r}: expected WIDTHxHEIGHT, e.g. 480x360") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"resolution {text!r}: width and height must be positive")
    return w, h


def engine_confusion(checkpoint: str, ds: Dataset, size: Tuple[int, int], device: str,
                     flip: bool, classes: ClassSet, hook: Optional[BatchHook],
                     show_progress: bool,
                     precision: str = "fp32") -> Tuple[ConfusionMatrix, str, str]:
    """Score ``ds`` through SegmentationEngine, reading the next frame meanwhile.

    Returns the matrix, the runtime and the precision the engine ran (``auto`` resolved).

    Labels come out at the frame's size, which is the label's: the engine's exact frame
    path (the argmax of the bilinearly upsampled logits) at the engine's speed.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .inference import SegmentationEngine

    engine = SegmentationEngine(checkpoint, device=device, precision=precision,
                                resolution=size, output_size="input", tta=flip)
    cm = ConfusionMatrix(classes.num_classes, classes.ignore_index)
    bar = progress(total=len(ds), desc="evaluate", unit="frame", disable=not show_progress)
    try:
        with ThreadPoolExecutor(1) as reader:
            pending = reader.submit(ds.load, 0) if len(ds) else None
            for index in range(len(ds)):
                frame, label = pending.result()
                pending = reader.submit(ds.load, index + 1) if index + 1 < len(ds) else None
                labels = engine.infer(frame, "rgb").labels
                cm.update(labels[None], label[None])
                if hook is not None:
                    hook(index, None, None, torch.from_numpy(labels.astype(np.int64))[None])
                bar.update(1)
    finally:
        bar.close()
    return cm, engine.runtime, engine.precision


def evaluate_checkpoint(checkpoint: str, dataset: str, data_root: Optional[str],
                        split: Optional[str], *, holdout: Optional[str] = None,
                        resolution: Optional[Tuple[int, int]] = None, device: str = "cpu",
                        include: Optional[Sequence[str]] = None,
                        exclude: Optional[Sequence[str]] = None, batch_size: int = 1,
                        workers: int = 0, save_vis: Optional[str] = None, vis_count: int = 8,
                        tta: Optional[TTA] = None, show_progress: bool = False,
                        prior_correction: Optional[float] = None,
                        precision: str = "fp32",
                        class_colors: Optional[ClassColors] = None) -> Dict[str, object]:
    """Score a checkpoint on one split; returns the JSON-ready summary.

    ``resolution`` = network input (W, H); default the checkpoint's training input size,
    else each frame's own size. ``split`` may join splits (``train+val``).
    ``holdout`` scores one drive (:func:`holdout_scope`; ``split`` None lets it choose).
    ``prior_correction`` scores with that total strength instead of the checkpoint's own.
    ``precision`` other than fp32 (and ``auto``, which there means fp32) needs the engine
    path: the same engine, runtime and precision as segment-bag and the node.
    ``class_colors`` (:func:`~canet_ros.class_colors.read_class_colors`) recolours the
    ``save_vis`` pictures as it recolours segment-bag's and the node's.
    """
    from .checkpoint import class_set_from_metadata, load_checkpoint
    from .data import EvalTransform
    from .prior_correction import current_strength, set_prior_correction

    if save_vis:  # before minutes of scoring, not after them
        check_vis_folder(Path(save_vis))
    model, meta = load_checkpoint(checkpoint, map_location="cpu")
    if holdout is not None:
        split, include = holdout_scope(meta.get("train_args") or {}, holdout, split, include)
    elif split is None:
        raise ValueError("evaluate_checkpoint needs a split, or a holdout drive")
    if prior_correction is not None:
        set_prior_correction(model, meta, prior_correction, source=str(checkpoint))
    size = resolution or (tuple(meta["input_size"]) if meta.get("input_size") else None)
    expected, ds = scoring_data(checkpoint, meta, dataset, data_root, split,
                                EvalTransform(meta["mean"], meta["std"], size), include, exclude)
    shown = class_set_from_metadata(meta)  # segment-bag's and the node's colours
    palette = (apply_class_colors(shown, class_colors) if class_colors else shown).palette()
    hook = vis_hook(ds, palette, expected.ignore_index, save_vis, vis_count) if save_vis else None
    if engine_path(size, prior_correction, ds, tta):  # what segment-bag and the node run
        flip = tta is not None and tta.flip
        cm, runtime, precision = engine_confusion(checkpoint, ds, size, device, flip,
                                                  expected, hook, show_progress, precision)
    else:  # multi-scale TTA, a changed prior correction, or frames at their own size
        refuse_torch_precision(precision)
        cm = _torch_confusion(model, ds, expected, torch.device(device), batch_size, workers,
                              hook, tta, show_progress)
        runtime, precision = "torch", "fp32"
    result = summarize(cm, expected.names, len(ds))
    result.update({"checkpoint": str(checkpoint), "dataset": dataset, "split": split,
                   "include": list(include) if include else None,
                   "exclude": list(exclude) if exclude else None,
                   "runtime": runtime, "precision": precision,
                   "class_names": list(expected.names),
                   "resolution": list(size) if size else None,
                   "tta": {"flip": tta.flip, "scales": list(tta.scales)} if tta else None,
                   "prior_correction": current_strength(meta),
                   "seen_in_training": seen_in_training(meta.get("train_args") or {},
                                                        [p[0] for p in ds.pairs],
                                                        run_dir(checkpoint),
                                                        meta.get("lineage"))})
    if hook is not None:  # save_vis given
        save_charts(result, cm, expected.names, Path(save_vis),
                    scored_set(dataset, split, include, exclude))
        result["vis_pictures"] = hook.tally()  # for the CLI's closing line
    result["confusion_matrix"] = cm.matrix.tolist()
    return result


def _torch_confusion(model: nn.Module, ds: Dataset, classes: ClassSet, device: torch.device,
                     batch_size: int, workers: int, hook: Optional[BatchHook],
                     tta: Optional[TTA], show_progress: bool) -> ConfusionMatrix:
    loader = eval_loader(ds, batch_size, workers, pin_memory=device.type == "cuda")
    return evaluate_loader(model.to(device).eval(), loader, classes.num_classes,
                           classes.ignore_index, device, on_batch=hook, tta=tta,
                           show_progress=show_progress)

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

"""Datasets, transforms and label statistics for one training run.

Statistics the config leaves open (mean/std, class weights, input size) are computed
here from the training frames and written back into the config, so the saved config and
every checkpoint state exactly what was used and a resume never recomputes them. A
validation set that shares frames with training is warned about (``overlap_warnings``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..checkpoint import read_checkpoint, resolve_checkpoint
from ..classes import ClassSet
from ..data import (
    EvalTransform,
    SegmentationDataset,
    TrainTransform,
    build_dataset,
    dataset_class_set,
)
from ..data import compute_mean_std as _mean_std
from ..data.camvid import compose_label_maps
from ..errors import DatasetError
from .config import TrainConfig, check_class_weights, holdout_set_name
from .losses import class_pixel_counts, enet_class_weights
from .replay import MixedDataset, replay_per_epoch
from .transfer import label_lut, load_class_map, plan_transfer


@dataclass
class DataBundle:
    class_set: ClassSet
    train: SegmentationDataset
    train_transform: TrainTransform
    val: List[SegmentationDataset]
    val_specs: List[Dict[str, Any]]
    mean: List[float]
    std: List[float]
    input_size: List[int]
    class_weights: Optional[List[float]]


def _labels(ds: SegmentationDataset):
    for i in range(len(ds)):
        yield ds.load(i)[1]


def _pixel_counts(train: SegmentationDataset, cs: ClassSet) -> np.ndarray:
    """Class pixels as training sees them: replayed frames weighted by how often they are."""
    if not isinstance(train, MixedDataset):
        return class_pixel_counts(_labels(train), cs.num_classes, cs.ignore_index)
    own, pool = train.count(0), train.count(1)
    counts = [class_pixel_counts((train.load(i)[1] for i in range(start, stop)),
                                 cs.num_classes, cs.ignore_index)
              for start, stop in ((0, own), (own, own + pool))]
    return counts[0] + counts[1] * (train.per_epoch / max(pool, 1))


def _fill_statistics(cfg: TrainConfig, train: SegmentationDataset, cs: ClassSet,
                     verbose: bool) -> None:
    source = cfg.resume or cfg.init_weights
    unset = cfg.mean is None or cfg.std is None or cfg.input_size is None
    blob = read_checkpoint(source) if source and unset else None
    if blob is not None and cfg.input_size is None and blob.get("input_size"):
        # The starting model's input size, not the new frames' (a 1920x1200 camera), with
        # or without a --mean/--std of its own: it becomes the node's default resolution.
        cfg.input_size = [int(v) for v in blob["input_size"]]
    if blob is not None and (cfg.mean is None or cfg.std is None):
        # Resumed or fine-tuned weights expect the normalisation they were trained with.
        cfg.mean = cfg.mean or [float(v) for v in blob["mean"]]
        cfg.std = cfg.std or [float(v) for v in blob["std"]]
        if verbose:
            print(f"normalisation from {resolve_checkpoint(source)}: "
                  f"mean={cfg.mean} std={cfg.std}", flush=True)
    if cfg.mean is None or cfg.std is None:
        mean, std = _mean_std(train)
        cfg.mean = cfg.mean or [round(v, 6) for v in mean]
        cfg.std = cfg.std or [round(v, 6) for v in std]
        if verbose:
            print(f"normalisation from {len(train)} training frames: mean={cfg.mean} "
                  f"std={cfg.std}", flush=True)
    if cfg.class_weights is None and cfg.class_weighting == "enet":
        counts = _pixel_counts(train, cs)
        where = f"{cfg.dataset} {cfg.data_root} split {cfg.train_split!r}" if cfg.data_root \
            else f"{cfg.dataset} split {cfg.train_split!r}"
        cfg.class_weights = [round(w, 6) for w in enet_class_weights(counts, cfg.enet_c, where)]
        if verbose:
            pairs = zip(cs.names, cfg.class_weights, strict=True)
            print("class weights (1/ln(c+p)): " + ", ".join(f"{n}={w:.3f}" for n, w in pairs),
                  flush=True)


def val_specs(cfg: TrainConfig) -> List[Dict[str, Any]]:
    """Return the configured validation sets plus, with ``holdout``, the held-out drive.

    The held-out set is exactly the frames ``holdout`` removes from the training split(s).
    """
    specs = [dict(v) for v in cfg.val_sets]
    if cfg.holdout:
        specs.append({"name": holdout_set_name(cfg.holdout), "split": cfg.train_split,
                      "include": [cfg.holdout]})
    return specs


def with_replay(cfg: TrainConfig, train: SegmentationDataset, cs: ClassSet,
                verbose: bool) -> SegmentationDataset:
    """``train`` plus ``replay_ratio`` original frames per frame, labels mapped to ``cs``."""
    if not cfg.replay_dataset or cfg.replay_ratio <= 0:
        return train
    old_cs = dataset_class_set(cfg.replay_dataset, cfg.replay_root)
    plan = plan_transfer(old_cs.names, cs.names,
                         load_class_map(cfg.class_map) if cfg.class_map else None)
    try:
        replay = build_dataset(cfg.replay_dataset, cfg.replay_root, cfg.replay_split,
                               exclude=cfg.replay_exclude or None, cache=cfg.cache,
                               root_flag="--replay-root")
    except DatasetError as exc:
        # The own-data config replays CamVid by default; a robot's laptop may not have it.
        raise DatasetError(f"replay data ({cfg.replay_dataset}): {exc}; point --replay-root "
                           f"at it, or pass --replay-ratio 0 to train without replay") from exc
    lut = label_lut(plan, old_cs.ignore_index, cs.ignore_index)
    # Composed, not replaced: ids the replay data set refuses (CamVid's) stay refused.
    replay.label_map = (lut if replay.label_map is None
                        else compose_label_maps(replay.label_map, lut))
    mixed = MixedDataset([train, replay], [None, None], cache=cfg.cache)
    mixed.per_epoch = replay_per_epoch(len(train), len(replay), cfg.replay_ratio)
    if verbose:
        print(f"replay: {mixed.per_epoch} an epoch, drawn from {len(replay)} "
              f"{cfg.replay_dataset} {cfg.replay_split} frames, classes {plan.describe()}",
              flush=True)
    return mixed


def overlap_warnings(cfg: TrainConfig, train: SegmentationDataset,
                     specs: List[Dict[str, Any]], val: List[SegmentationDataset]) -> List[str]:
    """Return one warning for each validation set holding frames the run trains on.

    Training frames are the own ones and the replay pool's (each epoch draws afresh from
    all of it), told apart by resolved image path. Not refused: fine-tuning on every
    labelled frame (train+val with the val set) is legitimate, but its score is then no
    held-out figure, and where the set picks best.pt (and the exported model) it is picked
    on frames the run has learnt.
    """
    trained = {Path(image).resolve() for image, _ in train.pairs}
    picks = cfg.select_on or (holdout_set_name(cfg.holdout) if cfg.holdout else None)
    out = []
    for spec, ds in zip(specs, val, strict=True):
        seen = sum(1 for image, _ in ds.pairs if Path(image).resolve() in trained)
        if not seen:
            continue
        line = (f"warning: {spec['name']}: {seen} of its {len(ds)} frames are training "
                f"frames; its score is not held out")
        if picks is None or picks == spec["name"]:
            line += " and best.pt is picked on frames the run trains on"
        out.append(line)
    return out


def resolve_backbone(cfg: TrainConfig) -> str:
    """Return the backbone left open: the starting checkpoint's, else MobileNetV2 (CANet1)."""
    if cfg.backbone is None:
        source = cfg.resume or cfg.init_weights
        cfg.backbone = str(read_checkpoint(source)["backbone"]) if source else "mobilenetv2"
    return cfg.backbone


def build_data(cfg: TrainConfig, verbose: bool = True) -> DataBundle:
    resolve_backbone(cfg)
    cs = dataset_class_set(cfg.dataset, cfg.data_root)
    if cfg.class_weights is not None:  # a folder's class count is known only now
        check_class_weights(cfg.class_weights, cs.num_classes)
    exclude = list(cfg.train_exclude) + ([cfg.holdout] if cfg.holdout else [])
    train = build_dataset(cfg.dataset, cfg.data_root, cfg.train_split,
                          include=cfg.train_include, exclude=exclude, cache=cfg.cache)
    train = with_replay(cfg, train, cs, verbose)
    train.preload()
    _fill_statistics(cfg, train, cs, verbose)
    specs = val_specs(cfg)
    val = [build_dataset(cfg.dataset, cfg.data_root, s.get("split", "val"),
                         include=s.get("include") or None, exclude=s.get("exclude") or None,
                         cache=cfg.cache) for s in specs]
    if cfg.input_size is None:
        ref = val[0] if val else train
        img, _ = ref.load(0)
        cfg.input_size = [int(img.shape[1]), int(img.shape[0])]
    for ds in val:
        ds.transform = EvalTransform(cfg.mean, cfg.std, tuple(cfg.input_size))
    # Own frames come in any size: scale them around the network's input unless told.
    base = cfg.base_size or (cfg.input_size if cfg.dataset == "folder" else None)
    tt = TrainTransform(tuple(cfg.crop_size), cfg.mean, cfg.std, ignore_index=cs.ignore_index,
                        scale_range=(cfg.scale_min, cfg.scale_max), flip=cfg.flip,
                        base_size=tuple(base) if base else None,
                        photometric=cfg.photometric, rotate=cfg.rotate, blur=cfg.blur)
    train.transform = tt
    if verbose:
        own = (f"{train.count(0)} frames + {train.per_epoch} replayed an epoch"
               if isinstance(train, MixedDataset) else f"{len(train)} frames")
        print(f"train: {own}; " + "; ".join(
            f"{s['name']}: {len(d)} frames" for s, d in zip(specs, val, strict=True)), flush=True)
        for line in overlap_warnings(cfg, train, specs, val):
            print(line, flush=True)
    # Explicit weights win; with class_weighting=none and none given, the loss is plain CE.
    weights = list(cfg.class_weights) if cfg.class_weights else None
    return DataBundle(cs, train, tt, val, specs, list(cfg.mean), list(cfg.std),
                      list(cfg.input_size), weights)

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

"""What a run's checkpoints record about where their weights and frames came from.

Stored under the checkpoint metadata key ``lineage`` (read by ``canet_ros.data.seen``):

- ``frames``: for a dataset folder, ``{"folder": <the folder's name>, "stems": [...]}``,
  the run's own training frames. The split rule of a folder without lists is positional,
  so labelling one more frame moves frames between train and val; the record keeps what
  the run really trained on. The folder's name, never its path: a checkpoint names no
  folder of the training machine.
- ``start``: with ``--init-weights``, the starting checkpoint's ``{"checkpoint": <as in
  train_args>, "train_args": ..., "lineage": ...}``, its own record nested in turn. No
  weights, no metrics.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..data.seen import LINEAGE_KEY, count_start_seen, start_record
from .config import TrainConfig, holdout_set_name
from .data_setup import DataBundle
from .replay import MixedDataset


def run_lineage(cfg: TrainConfig, data: DataBundle, run_dir: Path,
                resume_blob: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Return the record this run's checkpoints carry (see the module's docstring).

    A resumed run keeps the start its checkpoint recorded: the file --init-weights named
    may have changed since (a run started from its own folder's best.pt overwrites it).
    """
    record: Dict[str, Any] = {}
    previous = resume_blob.get(LINEAGE_KEY) if resume_blob is not None else None
    frames = own_frames(cfg, data)
    if frames is not None:
        record["frames"] = _with_earlier(frames, previous)
    if isinstance(previous, Mapping):
        start = previous.get("start")
    elif cfg.init_weights:  # a new run, or one whose checkpoints predate the record
        start = start_record(cfg.init_weights)
        start["checkpoint"] = _portable(cfg.init_weights, run_dir)
    else:
        start = None
    if isinstance(start, Mapping):
        record["start"] = dict(start)
    return record


def own_frames(cfg: TrainConfig, data: DataBundle) -> Optional[Dict[str, Any]]:
    """Return a dataset folder run's own training frames: the folder's name and the stems."""
    if cfg.dataset != "folder" or not cfg.data_root:
        return None
    train = data.train
    own = train.parts[0] if isinstance(train, MixedDataset) else train  # not the replay
    stems = sorted({Path(image).stem for image, _ in own.pairs})
    return {"folder": Path(cfg.data_root).resolve().name, "stems": stems}


def _with_earlier(frames: Dict[str, Any], previous: Any) -> Dict[str, Any]:
    """Add the stems the run trained on before a resume: its folder's split may have moved."""
    earlier = previous.get("frames") if isinstance(previous, Mapping) else None
    if isinstance(earlier, Mapping) and earlier.get("folder") == frames["folder"] \
            and isinstance(earlier.get("stems"), list):
        frames["stems"] = sorted(set(frames["stems"]) | {str(s) for s in earlier["stems"]})
    return frames


def _portable(spec: str, run_dir: Path) -> str:
    """Return ``spec`` as train_args store it: relative to the run folder (``default`` kept)."""
    if spec == "default":
        return spec
    return os.path.relpath(Path(spec).expanduser().resolve(), Path(run_dir).resolve())


def holdout_warning(cfg: TrainConfig, data: DataBundle, record: Mapping[str, Any],
                    run_dir: Path) -> Optional[str]:
    """Say when the starting weights trained on frames of the --holdout drive, else None.

    A held-out score is meant as a new camera's; weights that learnt those frames before
    this run score far above that (66.6 against 41.2 mIoU for the bundled model on 0006R0).
    """
    start = record.get("start")
    if not cfg.holdout or not isinstance(start, Mapping):
        return None
    name = holdout_set_name(cfg.holdout)
    frames: List[Any] = [image for spec, ds in zip(data.val_specs, data.val, strict=True)
                         if spec.get("name") == name for image, _ in ds.pairs]
    seen = count_start_seen(start, frames, Path(run_dir).resolve()) if frames else 0
    if not seen:
        return None
    return (f"warning: the starting weights ({cfg.init_weights}) trained on {seen} of the "
            f"{len(frames)} held-out frames: the held-out score is not a new-camera score")

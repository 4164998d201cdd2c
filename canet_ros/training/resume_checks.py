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

"""What a resume takes from last.pt, and what this invocation's config changes in it."""
from __future__ import annotations

from typing import Any, Dict, Optional

from torch.optim import Optimizer

from ..checkpoint import backbone_mismatch
from ..classes import ClassSet
from .config import TrainConfig
from .run_folder import check_world_size
from .schedule import PolyLR, poly_factor


def check_resume(blob: Optional[Dict[str, Any]], cfg: TrainConfig, world_size: int
                 ) -> Optional[str]:
    """Refuse what a resume may not change, before the data loads; returns workers_note's.

    ``blob``: the --resume checkpoint (None: no resume, nothing to check).
    """
    if blob is None:
        return None
    st, path = blob["train_state"], cfg.resume
    check_world_size(st, path, world_size)
    check_batch_size(st, path, cfg.batch_size)
    check_optimizer(blob, path, cfg.optimizer)
    check_train_layers(blob, path, cfg.train_layers)
    return workers_note(blob, path, cfg.workers)


def check_backbone(blob: Dict[str, Any], path: Any, backbone: Optional[str]) -> None:
    """Refuse another backbone (a flag or a --config file's) than the run's own.

    Its weights fit only the run's network: loading them failed with load_state_dict's
    traceback after config.yaml had been rewritten with the other backbone, so a later
    ``--config RUN/config.yaml`` trained the wrong network. None: the checkpoint's own.
    """
    saved = blob.get("backbone")
    if backbone is None or saved is None or saved == backbone:
        return
    raise ValueError(f"{backbone_mismatch(path, saved, backbone)}; a resume continues the "
                     f"run's own network (train {backbone} as a new run, with another "
                     f"--out-dir)")


def check_train_layers(blob: Dict[str, Any], path: Any, train_layers: str) -> None:
    """Refuse another --train-layers: the saved optimiser state holds the run's own set."""
    saved = (blob.get("train_args") or {}).get("train_layers")
    if saved is None or saved == train_layers:
        return
    raise ValueError(f"{path}: was trained with --train-layers {saved}, this run asks for "
                     f"{train_layers}; resume with --train-layers {saved}, or train other "
                     f"layers from these weights as a new run (--init-weights {path} and "
                     f"another --out-dir)")


def check_classes(blob: Optional[Dict[str, Any]], path: Any, class_set: ClassSet) -> None:
    """Refuse a data set with other classes than the run's (another --data-root's).

    The classifier has one row per class of the run: another count failed in
    load_state_dict after config.yaml had been rewritten, and renamed classes would train
    under the wrong names.
    """
    saved = (blob or {}).get("class_names")
    if saved is None or list(saved) == list(class_set.names):
        return
    raise ValueError(f"{path}: the run's model has {len(saved)} classes ({', '.join(saved)}), "
                     f"the data set this resume reads has {class_set.num_classes} "
                     f"({', '.join(class_set.names)}); resume with the run's data set "
                     f"(--data-root), or fine-tune onto these classes as a new run "
                     f"(--init-weights {path}, --class-map, another --out-dir)")


def check_batch_size(st: Dict[str, Any], path: Any, batch_size: int) -> None:
    """Refuse to continue a run with another batch size, before the data loads.

    The finished batches of the stopped epoch are drawn again and skipped: with another
    batch size they are other batches (or more than the epoch has: a bare StopIteration),
    and the steps an epoch has, hence the schedule's length, change under the run.
    Checkpoints from before the batch size was stored are let through.
    """
    saved = st.get("batch_size")
    if saved is None or int(saved) == batch_size:
        return
    raise ValueError(f"{path}: was trained with batch size {int(saved)}, this run asks for "
                     f"{batch_size}; resume with --batch-size {int(saved)}")


def check_optimizer(blob: Dict[str, Any], path: Any, optimizer: str) -> None:
    """Refuse another --optimizer on resume: the saved state fits only the run's own."""
    saved = (blob.get("train_args") or {}).get("optimizer")
    if saved is None or saved == optimizer:
        return
    raise ValueError(f"{path}: was trained with --optimizer {saved}, this run asks for "
                     f"{optimizer}; resume with --optimizer {saved}")


def workers_note(blob: Dict[str, Any], path: Any, workers: int) -> Optional[str]:
    """Say why a resume with another --workers will not continue exactly (None: same).

    Each data worker draws augmentation from its own generator (the main process's with
    0 workers), and which worker loads which frame depends on how many there are: the
    same seed gives another augmentation stream. Allowed, as a new run with it would be.
    """
    saved = (blob.get("train_args") or {}).get("workers")
    if saved is None or int(saved) == int(workers):
        return None
    return (f"{path} was trained with --workers {int(saved)}, this run uses {int(workers)}: "
            f"the augmentation stream depends on the number of data workers, so the run "
            f"goes on but will not equal an uninterrupted one (resume with --workers "
            f"{int(saved)} for that)")


def restore_schedule(optimizer: Optimizer, scheduler: PolyLR, st: Dict[str, Any],
                     cfg: TrainConfig, total_steps: int) -> None:
    """Load the saved optimiser and scheduler, then apply this invocation's recipe.

    Their saved state brings back the first invocation's lr, weight decay and poly power;
    the config (the run's own unless a flag or --config changed it) wins, and the decay
    goes on from the current step towards ``total_steps`` (a changed --epochs or --steps).
    """
    optimizer.load_state_dict(st["optimizer"])
    scheduler.load_state_dict(st["scheduler"])
    scheduler.total_steps = int(total_steps)
    scheduler.power = float(cfg.poly_power)
    scheduler.base_lrs = [float(cfg.lr)] * len(optimizer.param_groups)
    factor = poly_factor(scheduler.last_epoch, scheduler.total_steps, scheduler.power)
    for group in optimizer.param_groups:
        group["initial_lr"] = float(cfg.lr)
        group["lr"] = float(cfg.lr) * factor  # the lr the next step uses
        group["weight_decay"] = float(cfg.weight_decay)
        if "momentum" in group and cfg.optimizer == "sgd":
            group["momentum"] = float(cfg.momentum)
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]

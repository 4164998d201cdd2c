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

"""The run folder: what a run writes there first, and the state a resume takes from it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..atomic_write import remove_stale_temps, write_error
from ..errors import CanetError
from ..folder_lock import FolderLock
from .config import TrainConfig, save_config

# What a run writes atomically into its folder (the trainer, and RunLog on a resume).
ATOMIC_FILES = ("last.pt", "best.pt", "log.csv")
# Held by the run writing the folder; hidden, and named like nothing a run folder holds.
LOCK = ".canet_train.lock"


class RunFolderLock(FolderLock):
    """The lock a run holds on its folder from before the folder is checked until it ends.

    Inside the folder: nothing replaces a run folder whole. Taking it creates the folder;
    a run that ends having written nothing there removes the folders it created, as it did
    before it locked (FolderLock's clean-up).
    """

    def __init__(self, run_dir: Path):
        super().__init__(run_dir, run_dir / LOCK, "train",
                         hint="wait for it to end, or choose another --out-dir")


def lock_run_folder(run_dir: Path) -> Optional[RunFolderLock]:
    """Hold ``run_dir`` for this run, or refuse in one line naming the run that holds it.

    Under torchrun only rank 0 writes the folder, so only rank 0 locks it (a refused rank 0
    ends the whole job).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0:
        return None
    if run_dir.exists() and not run_dir.is_dir():
        raise CanetError(f"{run_dir}: exists and is not a folder; choose another --out-dir")
    lock = RunFolderLock(run_dir)
    lock.acquire_exclusive()
    return lock


def prepare_run_folder(cfg: TrainConfig, run_dir: Path) -> None:
    """Create the folder, clear what a killed write left there, and save the config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # A kill inside a checkpoint save leaves its temp file (55 MB for last.pt) behind.
    remove_stale_temps(run_dir, ATOMIC_FILES)
    try:
        save_config(cfg, run_dir / "config.yaml")
    except OSError as exc:  # a full disk: name the file, as a failed checkpoint save does
        raise write_error(run_dir / "config.yaml", exc) from exc


def train_state(blob: Dict[str, Any], path: Any) -> Dict[str, Any]:
    """Return a checkpoint's train_state; one without (model.pt, best.pt) cannot resume."""
    st = blob.get("train_state")
    if not isinstance(st, dict):
        raise ValueError(f"{path}: has no train_state, so it cannot continue a run; resume "
                         f"from the run's last.pt (best.pt and model.pt hold weights only)")
    return st


def check_world_size(st: Dict[str, Any], path: Any, world_size: int) -> None:
    """Refuse to continue a run with another number of processes.

    The shuffle, the per-rank augmentation streams and the poly schedule's length all follow
    from the process count; with another count the finished batches cannot be replayed (a
    bare StopIteration) or the global batch silently changes. Checkpoints from before the
    count was stored are let through.
    """
    saved = st.get("world_size")
    if saved is None or int(saved) == world_size:
        return
    how = "as one process, without torchrun" if int(saved) == 1 else \
        f"under torchrun --nproc_per_node {int(saved)}"
    raise ValueError(f"{path}: was trained with {int(saved)} process(es), this run has "
                     f"{world_size}; resume with the same number of processes ({how})")


def rank_rng(st: Dict[str, Any], rank: int) -> Optional[Dict[str, Any]]:
    """Return this rank's saved epoch RNG state (older checkpoints hold rank 0's only)."""
    states: Optional[List[Any]] = st.get("rank_rngs")
    if states and rank < len(states):
        return states[rank]
    return st.get("epoch_rng")

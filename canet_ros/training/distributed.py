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

"""torchrun / DistributedDataParallel plumbing.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a
no-op and training runs in one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, List

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group from env vars: nccl on CUDA, gloo on CPU."""
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(),
                    int(os.environ.get("LOCAL_RANK", "0")))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def any_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Whether any rank's flag is set, on every rank (e.g. 'stop now' after Ctrl-C).

    Any rank's: a scheduler preempting one node of a multi-node job SIGTERMs only that
    node's ranks, none of which may be rank 0.
    """
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank (a one-item list in one process)."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


class RankZeroOrder(Sampler[int]):
    """Run ``inner`` with rank 0's global torch RNG state on every rank.

    ``inner`` (ReplaySampler) draws its order from the global RNG; with rank 0's state every
    rank draws the same order and keeps its own share of it.
    Each rank's own RNG differs (augmentation is seeded per rank, rank 0 validates), so without
    this the ranks would draw different orders and train on overlapping shares. Rank 0 draws
    exactly as a one-process run; the other ranks' own RNG is left as it was.
    """

    def __init__(self, inner: Sampler[int], info: DistInfo, device: torch.device):
        self.inner, self.info, self.device = inner, info, device

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        if not self.info.enabled:
            return iter(self.inner)
        own = torch.get_rng_state()
        # A copy: on CPU .to() would return ``own`` itself for the broadcast to overwrite.
        shared = own.to(self.device, copy=True)  # nccl moves CUDA tensors only
        dist.broadcast(shared, 0)
        torch.set_rng_state(shared.cpu())
        try:
            order = list(iter(self.inner))
        finally:
            if not self.info.is_main:
                torch.set_rng_state(own)
        return iter(order)


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

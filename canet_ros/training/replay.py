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

"""Own frames plus replayed frames of the original data set, as one training set.

Fine-tuning on a few dozen frames of a new camera forgets what the rest of the world
looks like; mixing original training frames back in (their labels mapped to the new
classes) keeps it. Each epoch takes every own frame once plus ``ratio`` times as many
original frames, drawn afresh from the whole original set: over a few hundred steps the
model sees all of it, where a fixed draw of 20 frames (tried first) kept too little of
it (docs/own_data.md). The draws come from torch's global generator, whose state the
trainer stores at each epoch start, so a resumed run draws the same frames.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Sampler

from ..data import SegmentationDataset


class MixedDataset(SegmentationDataset):
    """Frames of several datasets (each with its own label mapping) behind one index."""

    def __init__(self, parts: Sequence[SegmentationDataset],
                 picks: Sequence[Optional[Sequence[int]]], transform: Any = None,
                 cache: bool = False):
        super().__init__([], transform, cache=cache)
        self.parts = list(parts)
        self.index: List[Tuple[int, int]] = []
        for p, (ds, pick) in enumerate(zip(self.parts, picks, strict=True)):
            chosen = range(len(ds)) if pick is None else pick
            self.index.extend((p, int(i)) for i in chosen)
        # Keep the parts' pairs reachable (statistics, seen-in-training bookkeeping).
        self.pairs = [self.parts[p].pairs[i] for p, i in self.index]
        # Original frames an epoch draws (ReplaySampler); None: every frame every epoch.
        self.per_epoch: Optional[int] = None

    def __len__(self) -> int:
        return len(self.index)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        p, i = self.index[index]
        return self.parts[p].load(i)

    def preload(self) -> None:
        for ds in self.parts:
            ds.cache = ds.cache or self.cache
        for i in range(len(self)):
            self.load(i)

    def name(self, index: int) -> str:
        p, i = self.index[index]
        return self.parts[p].name(i)

    def count(self, part: int) -> int:
        return sum(1 for p, _ in self.index if p == part)


class ReplaySampler(Sampler[int]):
    """Per epoch: every own frame once and ``per_epoch`` original frames, shuffled.

    The own frames are indices ``[0, own)`` of a :class:`MixedDataset`, the original ones
    ``[own, own + pool)``. An epoch shorter than ``min_len`` (a batch) is topped up with
    repeats of its own draw. With several processes every rank draws the same order (the
    trainer seeds them alike) and keeps its ``rank::world`` share.
    """

    def __init__(self, own: int, pool: int, per_epoch: int, min_len: int = 1,
                 rank: int = 0, world: int = 1):
        if own < 1 or pool < 0 or not 0 <= per_epoch <= pool:
            raise ValueError(f"replay sampler: own={own}, pool={pool}, per_epoch={per_epoch}")
        self.own, self.pool, self.per_epoch = own, pool, per_epoch
        self.total = max(own + per_epoch, min_len)
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return self.total // self.world

    def __iter__(self) -> Iterator[int]:
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        gen = torch.Generator().manual_seed(seed)
        drawn = torch.randperm(self.pool, generator=gen)[:self.per_epoch] + self.own
        order = torch.cat([torch.arange(self.own), drawn])
        if len(order) < self.total:
            extra = torch.randint(len(order), (self.total - len(order),), generator=gen)
            order = torch.cat([order, order[extra]])
        order = order[torch.randperm(len(order), generator=gen)]
        share = order[self.rank:len(self) * self.world:self.world]
        return iter(share.tolist())


def replay_per_epoch(own: int, pool: int, ratio: float) -> int:
    """Original frames an epoch mixes in: ``ratio`` per own frame, at most the whole set."""
    return min(max(round(ratio * own), 0), pool)

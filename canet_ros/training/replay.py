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
looks like; mixing a fixed draw of the original training frames back in (their labels
mapped to the new classes) keeps it. The draw is fixed per seed so a resume sees the same
set, and evenly spread over the original set so it covers its drives and lighting.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

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


def replay_indices(available: int, wanted: int, seed: int) -> List[int]:
    """``wanted`` distinct indices out of ``available``, spread evenly with a seeded offset."""
    wanted = min(max(wanted, 0), available)
    if wanted == 0:
        return []
    offset = np.random.default_rng(seed).uniform(0.0, 1.0)
    picks = np.floor((np.arange(wanted) + offset) * available / wanted).astype(int)
    return sorted(set(int(min(v, available - 1)) for v in picks))

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


"""Which frames a training run trained on, from its checkpoint's ``train_args``.

``canet evaluate`` says when a score is not a held-out one. The run's data set, split(s)
and name filters, and its replay source, decide. CamVid and Cityscapes frames carry
their split in their path (``train/x.png``, ``leftImg8bit/val/<city>/x.png``); a dataset
folder's split lives in its lists or split rule, so its frames are matched against the
folder's own train split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Set, Union

from ..errors import DatasetError
from .camvid import filter_names
from .cityscapes import IMG_SUFFIX
from .folder import index_folder


@dataclass
class _Source:
    """One data set the run drew training frames from."""

    dataset: str
    root: Optional[str]
    splits: Set[str]
    include: List[str]
    exclude: List[str]
    run_dir: Optional[Path]
    _trained: dict = field(default_factory=dict)  # folder root -> its trained frames

    def holds(self, frame: Path) -> bool:
        if not filter_names([self._name(frame)], self.include, self.exclude):
            return False
        if self.dataset == "folder":
            root = self._folder_root(frame)
            return root is not None and frame.resolve() in self._folder_frames(root)
        is_cityscapes = frame.name.endswith(IMG_SUFFIX)
        if is_cityscapes != (self.dataset == "cityscapes"):
            return False
        # camvid: <root>/<split>/x.png; cityscapes: <root>/leftImg8bit/<split>/<city>/x.png
        split_dir = frame.parent.parent if is_cityscapes else frame.parent
        return split_dir.name in self.splits

    def _name(self, frame: Path) -> str:
        # The filters match CamVid/Cityscapes file names and a folder's stems.
        return frame.stem if self.dataset == "folder" else frame.name

    def _folder_root(self, frame: Path) -> Optional[Path]:
        """Find the run's dataset folder: where train_args point, else the frame's own one.

        A copied run or moved data set no longer resolves; a frame then counts when its
        dataset folder has the recorded folder's name.
        """
        if not self.root:
            return None
        recorded = Path(self.root)
        if not recorded.is_absolute() and self.run_dir is not None:
            recorded = self.run_dir / recorded
        if recorded.is_absolute() and recorded.is_dir():
            return recorded
        # Own layout: <root>/images/x.png; CVAT: <export>/JPEGImages/x.jpg or
        # <parent>/images/x.jpg beside <parent>/<export>/.
        base = frame.parent.parent
        for candidate in (base, base / recorded.name):
            if candidate.name == recorded.name and candidate.is_dir():
                return candidate
        return None

    def _folder_frames(self, root: Path) -> Set[Path]:
        key = str(root.resolve())
        if key not in self._trained:
            try:
                index = index_folder(root)
                stems = [s for split in sorted(self.splits) for s in index.stems(split)]
            except DatasetError:
                stems, index = [], None
            stems = filter_names(stems, self.include, self.exclude)
            self._trained[key] = {index.images[s].resolve() for s in stems} if index else set()
        return self._trained[key]


def _sources(args: Mapping[str, Any], run_dir: Optional[Path]) -> List[_Source]:
    exclude = [str(v) for v in args.get("train_exclude") or []]
    if args.get("holdout"):
        exclude.append(str(args["holdout"]))
    sources = [_Source(str(args.get("dataset") or "camvid"), args.get("data_root"),
                       set(str(args.get("train_split") or "train").split("+")),
                       [str(v) for v in args.get("train_include") or []], exclude, run_dir)]
    if args.get("replay_dataset") and float(args.get("replay_ratio") or 0) > 0:
        sources.append(_Source(str(args["replay_dataset"]), args.get("replay_root"),
                               set(str(args.get("replay_split") or "train").split("+")), [],
                               [str(v) for v in args.get("replay_exclude") or []], run_dir))
    return sources


def count_seen(train_args: Mapping[str, Any], frames: Sequence[Union[str, Path]],
               run_dir: Optional[Union[str, Path]] = None) -> Optional[int]:
    """How many of ``frames`` the run trained on (own or replayed); None: not recorded.

    ``run_dir`` is the folder the checkpoint's relative paths start from (its run folder).
    """
    if "train_split" not in train_args:
        return None
    sources = _sources(train_args, Path(run_dir) if run_dir else None)
    return sum(1 for f in frames if any(s.holds(Path(f)) for s in sources))

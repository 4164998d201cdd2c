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


"""Which frames a training run trained on, from its checkpoint's ``train_args`` and lineage.

``canet evaluate`` says when a score is not a held-out one. The run's data set, split(s)
and name filters, and its replay source, decide. CamVid and Cityscapes frames carry
their split in their path (``train/x.png``, ``leftImg8bit/val/<city>/x.png``); a dataset
folder's split lives in its lists or split rule, so its frames are matched against the
stems the run recorded (``lineage["frames"]``), or, for a checkpoint without that record,
against the folder's own train split as it is now.

Weights started from ``--init-weights`` bring what they trained on with them: the
checkpoint's ``lineage["start"]`` holds the starting checkpoint's ``train_args`` and, in
turn, its own lineage. A frame counts as seen when any run of that chain trained on it.
A checkpoint without the record is traced through its ``init_weights`` file while that
file (or the bundled model, ``default``) is still there.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ..checkpoint import CheckpointError, read_checkpoint, resolve_checkpoint
from ..errors import DatasetError
from .camvid import filter_names
from .cityscapes import IMG_SUFFIX
from .folder import index_folder

LINEAGE_KEY = "lineage"  # the checkpoint metadata key of the record
# Where each dataset's frame path keeps its split: the folder this many levels above the
# frame (CamVid <root>/<split>/x.png; Cityscapes <root>/leftImg8bit/<split>/<city>/x.png).
# A dataset folder's split lives in its lists instead (_folder_frames). A dataset added to
# canet_ros.data.DATASETS needs its entry here: one without is refused, never guessed.
SPLIT_FOLDER_LEVEL = {"camvid": 1, "cityscapes": 2}


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
    stems: Optional[FrozenSet[str]] = None  # a folder run's recorded training frames
    folder: str = ""  # ... and its dataset folder's name

    known: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        # A dataset this version does not know (a checkpoint of a later version or a fork):
        # which of its frames the run saw cannot be told, so it holds none and the count
        # is "not recorded" (count_seen None), not a guess and not an error that would
        # throw away an evaluation's scores.
        self.known = self.dataset == "folder" or _split_folder_level(self.dataset) is not None

    def holds(self, frame: Path) -> bool:
        if not self.known:
            return False
        if self.stems is not None:  # recorded: the split the run saw, not today's rule
            return frame.stem in self.stems and self._in_named_folder(frame)
        if not filter_names([self._name(frame)], self.include, self.exclude):
            return False
        if self.dataset == "folder":
            root = self._folder_root(frame)
            return root is not None and frame.resolve() in self._folder_frames(root)
        if frame.name.endswith(IMG_SUFFIX) != (self.dataset == "cityscapes"):
            return False  # another dataset's frame: only Cityscapes' names end so
        split_dir = frame
        for _ in range(SPLIT_FOLDER_LEVEL[self.dataset]):
            split_dir = split_dir.parent
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
        found = self._recorded_root()
        if found is not None:
            return found
        # Own layout: <root>/images/x.png; CVAT: <export>/JPEGImages/x.jpg or
        # <parent>/images/x.jpg beside <parent>/<export>/.
        base = frame.parent.parent
        for candidate in (base, base / recorded.name):
            if candidate.name == recorded.name and candidate.is_dir():
                return candidate
        return None

    def _recorded_root(self) -> Optional[Path]:
        """Return the folder ``data_root`` names (from the run folder) if it still exists."""
        recorded = Path(self.root or "")
        if self.root and not recorded.is_absolute() and self.run_dir is not None:
            recorded = self.run_dir / recorded
        return recorded if self.root and recorded.is_absolute() and recorded.is_dir() else None

    def _in_named_folder(self, frame: Path) -> bool:
        """Whether ``frame`` is an image of the recorded folder: that one, or one so named.

        Own layout: <root>/images/x.png; CVAT: <export>/JPEGImages/x.jpg, or
        <parent>/images/x.jpg beside <parent>/<export>/.
        """
        recorded = self._recorded_root()
        base = frame.parent.parent
        for candidate in (base, base / self.folder):
            if not candidate.is_dir():
                continue
            if self.folder in (candidate.name, candidate.resolve().name) or (
                    recorded is not None and candidate.resolve() == recorded.resolve()):
                return True
        return False

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


def _split_folder_level(dataset: str) -> Optional[int]:
    """Return SPLIT_FOLDER_LEVEL's entry; None for a dataset this version does not know.

    A dataset in DATASETS without one is a contributor's omission (AssertionError); a name
    outside DATASETS comes from a checkpoint of another version (None).
    """
    from . import DATASETS  # looked up now: the package has finished importing by then

    level = SPLIT_FOLDER_LEVEL.get(dataset)
    if level is not None:
        return level
    if dataset in DATASETS:
        raise AssertionError(f"dataset {dataset!r} is listed in canet_ros.data.DATASETS but "
                             f"not wired into canet_ros.data.seen.SPLIT_FOLDER_LEVEL; add "
                             f"where its frames keep their split (docs/design.md, Extending)")
    return None


def _sources(args: Mapping[str, Any], run_dir: Optional[Path],
             frames: Any = None) -> List[_Source]:
    exclude = [str(v) for v in args.get("train_exclude") or []]
    if args.get("holdout"):
        exclude.append(str(args["holdout"]))
    sources = [_Source(str(args.get("dataset") or "camvid"), args.get("data_root"),
                       set(str(args.get("train_split") or "train").split("+")),
                       [str(v) for v in args.get("train_include") or []], exclude, run_dir)]
    if sources[0].dataset == "folder" and isinstance(frames, Mapping) \
            and isinstance(frames.get("stems"), list) and frames.get("folder"):
        sources[0].stems = frozenset(str(v) for v in frames["stems"])
        sources[0].folder = str(frames["folder"])
    if args.get("replay_dataset") and float(args.get("replay_ratio") or 0) > 0:
        sources.append(_Source(str(args["replay_dataset"]), args.get("replay_root"),
                               set(str(args.get("replay_split") or "train").split("+")), [],
                               [str(v) for v in args.get("replay_exclude") or []], run_dir))
    return sources


def locate(spec: Any, base_dir: Optional[Path]) -> Optional[Path]:
    """Return the file an ``init_weights`` value names, relative paths from ``base_dir``.

    ``default`` is the bundled model (canet_ros.checkpoint's resolution); ``base_dir`` None
    is the working directory (a path as given on the command line).
    """
    if not isinstance(spec, str) or not spec:
        return None
    if spec == "default":
        try:
            return resolve_checkpoint(spec)
        except CheckpointError:
            return None
    path = Path(spec).expanduser()
    # Normalised as resolve_train_args does: "../x.pt" from a run folder that is gone.
    return path if path.is_absolute() or base_dir is None else \
        Path(os.path.normpath(base_dir / path))


def _read_start(spec: Any, base_dir: Optional[Path], files: Set[Path]) -> Optional[Dict]:
    """Read a starting checkpoint's training record from its file (weights_only=True)."""
    path = locate(spec, base_dir)
    if path is None or not path.is_file() or path.resolve() in files:
        return None
    files.add(path.resolve())
    try:
        meta = read_checkpoint(path)
    except CheckpointError:
        return None
    args = meta.get("train_args")
    return {"checkpoint": spec, "train_args": dict(args) if isinstance(args, Mapping) else {},
            LINEAGE_KEY: meta.get(LINEAGE_KEY)}


def start_record(spec: str, base_dir: Optional[Path] = None,
                 files: Optional[Set[Path]] = None) -> Dict[str, Any]:
    """Return the record of the checkpoint ``spec`` names: train_args and lineage, no weights.

    A checkpoint made before lineages were recorded gets one traced through its
    ``init_weights`` now, while those files exist; an unreadable file keeps its name only.
    """
    files = set() if files is None else files
    top: Dict[str, Any] = {}
    slot = top  # the record whose "start" the next file fills
    while True:  # a loop, as a chain of files may be longer than Python's recursion limit
        entry = _read_start(spec, base_dir, files)
        if entry is None:
            slot["start"] = {"checkpoint": spec}
            break
        slot["start"] = entry
        if isinstance(entry[LINEAGE_KEY], Mapping):
            break
        path = locate(spec, base_dir)
        init = entry["train_args"].get("init_weights")
        entry[LINEAGE_KEY] = slot = {}
        if not (isinstance(init, str) and init) or path is None:
            break
        spec, base_dir = init, path.parent
    return top["start"]


_Step = Tuple[Mapping[str, Any], Optional[Path], Any]  # a run's train_args, folder, record


def _open_start(start: Mapping[str, Any], run_dir: Optional[Path],
                files: Set[Path]) -> Optional[_Step]:
    """Return the run a start names, reading its file if only named; None: nothing known."""
    args, record = start.get("train_args"), start.get(LINEAGE_KEY)
    if not isinstance(args, Mapping):  # recorded by name only: read it if it is there now
        entry = _read_start(start.get("checkpoint"), run_dir, files)
        if entry is None:
            return None
        args, record = entry["train_args"], entry[LINEAGE_KEY]
    if "train_split" not in args:  # a checkpoint without a training record
        return None
    path = locate(start.get("checkpoint"), run_dir)
    return args, path.parent if path else None, record


def _chain_sources(step: Optional[_Step], files: Set[Path]) -> List[_Source]:
    """Return the sources of one run and of every run its starting weights came from.

    The stored record is walked to its end, however long the fine-tune chain. Loops end:
    a file is read once (``files``: a run started from its own best.pt), and a record
    once (a crafted checkpoint's pickle may hold a record that contains itself).
    """
    sources: List[_Source] = []
    walked: Dict[int, Mapping[str, Any]] = {}  # id -> record, kept alive so ids stay unique
    while step is not None:
        args, run_dir, record = step
        record = record if isinstance(record, Mapping) else None
        sources += _sources(args, run_dir, record.get("frames") if record else None)
        if record is not None:
            start = record.get("start")
        else:  # made before the record: trace init_weights while its file is still there
            init = args.get("init_weights")
            start = {"checkpoint": init} if isinstance(init, str) and init else None
        if not isinstance(start, Mapping) or id(start) in walked:
            break
        walked[id(start)] = start
        step = _open_start(start, run_dir, files)
    return sources


def _count(sources: List[_Source], frames: Sequence[Union[str, Path]]) -> int:
    return sum(1 for f in frames if any(s.holds(Path(f)) for s in sources))


def count_seen(train_args: Mapping[str, Any], frames: Sequence[Union[str, Path]],
               run_dir: Optional[Union[str, Path]] = None,
               lineage: Optional[Mapping[str, Any]] = None) -> Optional[int]:
    """How many of ``frames`` the run or its starting weights trained on; None: not recorded.

    ``run_dir`` is the folder the checkpoint's relative paths start from (its run folder);
    ``lineage`` is the checkpoint's record (``LINEAGE_KEY``), None for an older checkpoint.
    """
    if "train_split" not in train_args:
        return None
    base = Path(run_dir) if run_dir else None
    sources = _chain_sources((train_args, base, lineage), set())
    return _count(sources, frames) if all(s.known for s in sources) else None


def count_start_seen(start: Mapping[str, Any], frames: Sequence[Union[str, Path]],
                     run_dir: Optional[Union[str, Path]] = None) -> int:
    """How many of ``frames`` the runs behind a starting checkpoint's record trained on."""
    files: Set[Path] = set()
    return _count(_chain_sources(_open_start(start, Path(run_dir) if run_dir else None, files),
                                 files), frames)

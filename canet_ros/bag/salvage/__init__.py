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

"""Pick the salvage reader for a damaged bag, and chain the files of a split bag.

Which formats can be salvaged, and how, is in docs/segment_bag.md ("Damaged bags").
One module per storage format (mcap, sqlite, ros1), the chunk scan the mcap and ros1
readers share (scan), the read order and positions they share (order), and what they all
report (damage).
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import BagError
from .damage import Damage, Recovered, SalvageSource
from .missing import MissingFile, attribute_losses

STORAGE_SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}


def _split_index(path: Path) -> tuple[int, str]:
    found = re.search(r"_(\d+)$", path.stem)
    return (int(found[1]) if found else -1, path.name)


def storage_files(folder: Path) -> tuple[str, list[Path]] | None:
    """Return the storage files of a ROS 2 bag folder whose metadata.yaml is missing.

    rosbag2 names them ``<folder>_<n>.mcap|.db3`` and rosbags ``<folder>.mcap|.db3``; a
    folder that holds anything else that is a bag is a folder of bags, not one bag.
    """
    pattern = re.compile(rf"^{re.escape(folder.name)}(_\d+)?$")
    found: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        if path.suffix == ".bag" or (path.is_dir() and (path / "metadata.yaml").is_file()):
            return None
        for storage, suffix in STORAGE_SUFFIX.items():
            if path.suffix == suffix and path.is_file():
                if not pattern.match(path.stem):
                    return None
                found.setdefault(storage, []).append(path)
    if len(found) != 1:
        return None
    storage, paths = next(iter(found.items()))
    return storage, sorted(paths, key=_split_index)


def _metadata(folder: Path) -> dict[str, Any]:
    """Return what a damaged bag's metadata.yaml still says (empty if missing or broken)."""
    try:
        info = yaml.safe_load((folder / "metadata.yaml").read_text(encoding="utf-8"))
        return dict(info["rosbag2_bagfile_information"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return {}


def _files(path: Path, storage: str) -> tuple[list[Path], dict[str, Any]]:
    """Return the storage files of ``path`` in order, and what metadata.yaml says.

    Listed files that are not on disk stay in the list (open_salvage counts them as lost,
    so the files after them keep their positions); when none of them is on disk, the
    folder's own storage files are read instead.
    """
    if path.is_file():
        return [path], {}
    meta = _metadata(path)
    files = [path / name for name in _listed_names(meta)]
    if not any(file.is_file() for file in files):
        files = (storage_files(path) or (storage, []))[1]
    return files, meta


def _listed_names(meta: dict[str, Any]) -> list[str]:
    """Return metadata.yaml's storage file names, or none where the list is not one.

    A damaged metadata.yaml may hold anything there (an alias bomb's nested lists made a
    name of megabytes; a name over 255 bytes made is_file() raise): then the folder's own
    storage files are read instead, as when the listed files are all absent.
    """
    names = meta.get("relative_file_paths")
    if not isinstance(names, list):
        return []
    base = [Path(n).name if isinstance(n, str) else "" for n in names]
    if not all(0 < len(n.encode("utf-8", "surrogateescape")) <= 255 for n in base):
        return []
    return base


def open_salvage(path: Path, storage: str, cause: str) -> SalvageSource:
    """Return a salvage reader for ``path``; BagError says why a format cannot be salvaged."""
    if storage == "ros1":
        from .ros1 import Ros1Salvage

        return _nonempty(path, Ros1Salvage(path, cause))
    files, meta = _files(path, storage)
    if meta.get("compression_mode") == "file":
        raise BagError(f"{path}: corrupt or truncated bag ({cause}); cannot salvage a bag "
                       f"compressed file by file (compression_mode: file)")
    if not files:
        raise BagError(f"{path}: corrupt or truncated bag ({cause}); cannot salvage: no "
                       f"{STORAGE_SUFFIX[storage]} file found")
    sources = _open_files(files, storage, cause, meta)
    chained = sources[0] if len(sources) == 1 else ChainedSalvage(sources, storage, cause)
    return _nonempty(path, chained)


def _open_files(files: Sequence[Path], storage: str, cause: str,
                meta: dict[str, Any]) -> list[SalvageSource]:
    """Open each listed file; one that is not on disk stands in as lost (MissingFile)."""
    sources: list[SalvageSource] = []
    missing: list[MissingFile] = []
    entries = meta.get("files") if isinstance(meta.get("files"), list) else []
    try:
        for i, file in enumerate(files):
            if file.is_file():
                # i is the file's place in metadata.yaml, so sqlite3 gets its own count
                sources.append(_open_file(file, storage, cause, meta, i))
                continue
            entry = entries[i] if i < len(entries) and isinstance(entries[i], dict) else {}
            missing.append(MissingFile(file, storage, cause, entry, meta))
            sources.append(missing[-1])
    except BaseException:
        for source in sources:
            source.close()
        raise
    attribute_losses(missing, [s for s in sources if not isinstance(s, MissingFile)], meta)
    return sources


def _open_file(file: Path, storage: str, cause: str, meta: dict[str, Any],
               index: int) -> SalvageSource:
    if storage == "mcap":
        from .mcap import open_mcap_salvage

        return open_mcap_salvage(file, cause)
    from .sqlite import SqliteSalvage

    entries = meta.get("files") or []
    expected = None
    if index < len(entries) and isinstance(entries[index], dict):
        expected = entries[index].get("message_count")
    elif len(entries) == 0 and index == 0:
        expected = meta.get("message_count")
    return SqliteSalvage(file, cause, int(expected) if isinstance(expected, int) else None,
                         compressed=meta.get("compression_mode") == "message")


def _nonempty(path: Path, source: SalvageSource) -> SalvageSource:
    if not any(count for _, count in source.topic_types().values()):
        lost = "; ".join(r.reason for r in source.damage.regions[:3]) or "no messages found"
        source.close()
        raise BagError(f"{path}: corrupt or truncated bag ({source.damage.cause}); nothing "
                       f"could be salvaged: {lost}")
    return source


class ChainedSalvage:
    """The files of a split bag, salvaged one by one and read one after another.

    rosbags reads a split bag the same way: file after file, each in time order.
    """

    def __init__(self, sources: Sequence[SalvageSource], storage: str, cause: str):
        self.sources = list(sources)
        # a missing file reads nothing: method and decoding come from a file on disk
        self._read = next(s for s in self.sources if not isinstance(s, MissingFile))
        self.damage = Damage(storage, cause, self._read.damage.method)
        for source in self.sources:
            self.damage.regions += source.damage.regions
            self.damage.notes += source.damage.notes

    def topic_types(self) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for source in self.sources:
            for topic, (msgtype, count) in source.topic_types().items():
                if isinstance(source, MissingFile) and topic in out:
                    msgtype = out[topic][0]  # a file's own schema beats metadata.yaml's
                out[topic] = (msgtype, out.get(topic, (msgtype, 0))[1] + count)
        return out

    def messages(self, topic: str) -> Iterator[Recovered]:
        offset: int | None = 0
        for source in self.sources:
            for msg in source.messages(topic):
                pos = None if offset is None or msg.position is None else offset + msg.position
                yield Recovered(msg.timestamp, msg.raw, pos)
            lost = source.damage.lost_on(topic)
            recovered = source.topic_types().get(topic, ("", 0))[1]
            offset = None if offset is None or lost is None else offset + recovered + lost

    def times(self, topic: str) -> list[int]:
        return [t for source in self.sources for t in source.times(topic)]

    @property
    def file_order(self) -> bool:
        """Whether every file is read in file order (salvage/scan.py)."""
        return all(getattr(source, "file_order", False) for source in self.sources)

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._read.deserialize(raw, msgtype)

    def close(self) -> None:
        for source in self.sources:
            source.close()

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

"""Output folder rules: never into or around the input, never over someone else's files."""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..folder_lock import FolderLock
from .errors import BagError

# Written first into every output folder; --overwrite only deletes folders that carry it.
MARKER = ".canet_segment_bag"
PARTIAL, OLD = ".partial", ".old"  # beside a folder while a rerun replaces it
LOCK = ".segment_bag.lock"  # beside OUTDIR while a run writes it (removed when it ends)
NAME_MAX = 255  # bytes in one file name on Linux file systems (ext4, xfs, btrfs, tmpfs)


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def check_not_around_inputs(outdir: Path, inputs: Sequence[Path]) -> None:
    """Refuse an OUTDIR equal to, inside, or containing an input (which --overwrite deletes)."""
    out = outdir.expanduser().resolve()
    for given in inputs:
        src = given.expanduser().resolve()
        if out == src or (src.is_dir() and _is_within(out, src)):
            raise BagError(f"{outdir}: the output folder must not be the input bag {given} or "
                           f"lie inside it")
        if _is_within(src, out):
            raise BagError(f"{outdir}: the output folder contains the input {given}; choose a "
                           f"folder that does not hold the input")


def _holds_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _check_ours(folder: Path) -> None:
    if _holds_files(folder) and not (folder / MARKER).is_file():
        raise BagError(f"{folder}: exists and was not written by canet segment-bag (no {MARKER} "
                       f"file); refusing to delete it, remove it yourself")


def staging_path(outdir: Path) -> Path:
    """Where a run that replaces OUTDIR writes until it is complete."""
    return outdir.with_name(outdir.name + PARTIAL)


def _old_path(outdir: Path) -> Path:
    return outdir.with_name(outdir.name + OLD)  # the earlier output, for the swap only


def fit_name(stem: str, suffix: str = "", max_bytes: int = NAME_MAX) -> str:
    """Return ``stem + suffix`` if it has at most ``max_bytes`` bytes, else a shortened name.

    The shortened name is the start of ``stem``, ``-``, 8 hex digits of its SHA-256 and
    ``suffix``: the same stem always gives the same name and two stems differ in their
    digests, so shortened names stay unique (a bag named with 250 bytes must still get an
    output).
    """
    name = stem + suffix
    if len(os.fsencode(name)) <= max_bytes:
        return name
    digest = hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
    budget = max_bytes - len(os.fsencode(f"-{digest}{suffix}"))
    start = stem
    while start and len(os.fsencode(start)) > budget:  # whole characters: never half of one
        start = start[:-1]
    return f"{start}-{digest}{suffix}"


def check_named(outdir: Path) -> None:
    """Refuse an OUTDIR without a name of its own (``.``, ``./``, ``..``, ``/``).

    A run writes beside OUTDIR (its lock, a replacement folder), which needs that name, and
    --overwrite would delete the folder the shell stands in.
    """
    if outdir.name in ("", ".."):
        raise BagError(f"{outdir}: names no folder of its own; give the output folder by its "
                       f"name (--out NAME)")


def lock_beside(outdir: Path, suffix: str) -> Path:
    """Return the path of the lock file beside OUTDIR that a run holds while it writes."""
    check_named(outdir)
    return outdir.with_name(fit_name(outdir.name, suffix))


def check_outdir(outdir: Path, overwrite: bool) -> None:
    """Refuse an existing OUTDIR unless --overwrite and it is ours (or empty)."""
    check_named(outdir)
    if not outdir.exists() and not outdir.is_symlink():
        check_creatable(outdir)
        return
    if not outdir.is_dir():
        raise BagError(f"{outdir}: exists and is not a folder")
    if not overwrite:
        raise BagError(f"{outdir}: output folder exists; pass --overwrite to replace it")
    _check_ours(outdir)
    if _holds_files(outdir):
        for beside in (staging_path(outdir), _old_path(outdir)):
            if beside.exists() and not beside.is_dir():
                raise BagError(f"{beside}: exists and is not a folder (needed while the new "
                               f"output replaces {outdir.name})")
            _check_ours(beside)


def check_creatable(outdir: Path) -> None:
    """Say now, not after the model has loaded, that a new OUTDIR cannot be made."""
    parent = outdir.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BagError(f"{outdir}: cannot create output folder ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BagError(f"{outdir}: cannot create output folder ({parent} is not writable)")


class StagedOutdir:
    """Where a run writes, so that --overwrite never costs the previous output early.

    A new or empty OUTDIR is written in place (an interrupted run leaves valid partial
    output there). An earlier run's OUTDIR stays untouched while the new run writes beside
    it, in OUTDIR.partial; ``commit`` swaps the two once the run is complete, ``discard``
    drops the new one, leaving the earlier output as it was.
    """

    def __init__(self, outdir: Path, overwrite: bool):
        # Before OUTDIR or OUTDIR.partial is looked at: another run may be writing them.
        self.lock = OutdirLock(outdir)
        self.lock.acquire_exclusive()
        try:
            check_outdir(outdir, overwrite)
            self.final = outdir
            self.staged = _holds_files(outdir)
            self.path = staging_path(outdir) if self.staged else outdir
            if self.staged:
                _remove(self.path)  # what a killed run left behind (checked to be ours)
            mark_outdir(self.path)
        except BaseException:
            self.lock.release()
            raise

    def release(self) -> None:
        """Let other runs at OUTDIR (also done when this object is collected)."""
        self.lock.release()

    def commit(self) -> None:
        if not self.staged:
            return
        old = _old_path(self.final)
        try:
            _remove(old)
            self.final.rename(old)
            self.path.rename(self.final)
        except OSError as exc:
            raise BagError(f"{self.final}: cannot replace the earlier output with this run's "
                           f"(in {self.path}): {exc.strerror or exc}") from None
        self.staged = False
        _remove(old, quiet=True)
        self.release()

    def discard(self) -> None:
        if self.staged:
            _remove(self.path, quiet=True)
        self.release()


def _remove(folder: Path, quiet: bool = False) -> None:
    if not folder.exists():
        return
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        if not quiet:
            raise BagError(f"{folder}: cannot remove it ({exc.strerror or exc})") from None


def mark_outdir(outdir: Path, run_id: str = "") -> None:
    """Create OUTDIR if needed and leave the marker that makes it ours (and names the run)."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / MARKER).write_text(f"written by canet segment-bag\nrun: {run_id}\n",
                                     encoding="utf-8")
    except OSError as exc:
        raise BagError(f"{outdir}: cannot create output folder ({exc.strerror or exc})") from None


def marker_run(outdir: Path) -> str | None:
    """Return the run id in OUTDIR's marker ("" if it names none), None without a marker."""
    try:
        lines = (outdir / MARKER).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((line[5:] for line in lines if line.startswith("run: ")), "")


def claim_shared_outdir(root: Path, overwrite: bool, run_id: str,
                        leftovers: frozenset[str] | set[str] = frozenset()) -> None:
    """Apply a sharded run's OUTDIR rules; one rank at a time runs this (under OutdirLock).

    As for one process: a folder someone else wrote is never used, and an earlier run's
    only with --overwrite. A folder this run's own ranks made (its marker names the run)
    is taken, and so is one holding nothing but a crashed run's ``leftovers``.
    """
    if not root.exists() and not root.is_symlink():
        check_creatable(root)
    elif not root.is_dir():
        raise BagError(f"{root}: exists and is not a folder")
    else:
        run = marker_run(root)
        contents = {p.name for p in root.iterdir()}
        if run is None and contents - set(leftovers):
            raise BagError(f"{root}: exists and was not written by canet segment-bag (no "
                           f"{MARKER} file); refusing to write into it, remove it yourself")
        # Shards started without a run id cannot be told apart by the marker; an earlier
        # run's merged report (written last, by rank 0) still says a run finished there.
        earlier = (run is not None and run != run_id) or "report.json" in contents
        if earlier and not overwrite:
            raise BagError(f"{root}: output folder of an earlier run; pass --overwrite to "
                           f"replace it")
    mark_outdir(root, run_id)


class OutdirLock(FolderLock):
    """segment-bag's lock, beside OUTDIR (so that a rerun can replace the whole folder)."""

    def __init__(self, outdir: Path):
        super().__init__(outdir, lock_beside(outdir, LOCK), "segment-bag", BagError)

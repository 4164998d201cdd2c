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

import shutil
from collections.abc import Sequence
from pathlib import Path

from .errors import BagError

# Written first into every output folder; --overwrite only deletes folders that carry it.
MARKER = ".canet_segment_bag"


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


def check_outdir(outdir: Path, overwrite: bool) -> None:
    """Refuse an existing OUTDIR unless --overwrite and it is ours (or empty)."""
    if not outdir.exists() and not outdir.is_symlink():
        return
    if not outdir.is_dir():
        raise BagError(f"{outdir}: exists and is not a folder")
    if not overwrite:
        raise BagError(f"{outdir}: output folder exists; pass --overwrite to replace it")
    if any(outdir.iterdir()) and not (outdir / MARKER).is_file():
        raise BagError(f"{outdir}: exists and was not written by canet segment-bag (no {MARKER} "
                       f"file); refusing to delete it, remove it yourself")


def prepare_outdir(outdir: Path, overwrite: bool) -> None:
    """Create OUTDIR (replacing an earlier run's when allowed) and mark it as ours."""
    check_outdir(outdir, overwrite)
    try:
        if outdir.exists():
            shutil.rmtree(outdir)
    except OSError as exc:
        raise BagError(f"{outdir}: cannot remove the old output ({exc.strerror or exc})") from None
    mark_outdir(outdir)


def mark_outdir(outdir: Path) -> None:
    """Create OUTDIR if needed and leave the marker that makes it ours."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / MARKER).write_text("written by canet segment-bag\n", encoding="utf-8")
    except OSError as exc:
        raise BagError(f"{outdir}: cannot create output folder ({exc.strerror or exc})") from None

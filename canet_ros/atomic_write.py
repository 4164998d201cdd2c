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

"""Atomic file writes whose failures name the file and the reason.

A temp file in the same folder is filled, then renamed over the target. A write cut short
(a full disk) must not end in a traceback that names neither: torch.save reports one as
"unexpected pos ...". Only the standard library is imported, so the command
line can name ``WriteError`` without loading torch.
"""
from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Union

from .errors import CanetError

PathLike = Union[str, os.PathLike]
# mkstemp's names: our prefix, 8 characters of [a-z0-9_], then our suffix.
_TEMP_TAIL = re.compile(r"[a-z0-9_]{8}\.tmp")


class WriteError(CanetError, OSError):
    """A file that could not be written; the message names it and the reason.

    An OSError too (``errno`` kept), so callers that handle failed writes catch it.
    """


def write_error(path: PathLike, exc: BaseException) -> WriteError:
    """Describe ``exc``, a failed write of ``path``, in one sentence naming both."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
    err = WriteError(f"{path}: cannot write ({reason})")
    err.errno = getattr(exc, "errno", None)  # str() stays the sentence: no strerror is set
    return err


def temp_prefix(path: PathLike) -> str:
    """Prefix of the temp file an atomic write of ``path`` fills before renaming it."""
    return f".{Path(path).name}."


def remove_stale_temps(folder: PathLike, names: Sequence[str]) -> List[Path]:
    """Delete the temp files that atomic writes of ``folder/NAME`` left when killed.

    Only this project's own pattern (``.NAME.XXXXXXXX.tmp``) is touched. Call it only for
    a folder one process writes (a run folder): there any such file is a dead write's.
    """
    removed = []
    for name in names:
        prefix = temp_prefix(name)
        for entry in Path(folder).glob(f"{glob.escape(prefix)}*.tmp"):
            if _TEMP_TAIL.fullmatch(entry.name[len(prefix):]) and entry.is_file():
                try:
                    entry.unlink()
                except FileNotFoundError:
                    continue
                removed.append(entry)
    return removed


def _temp_target(name: str) -> Optional[str]:
    """Return NAME for a temp file ``.NAME.XXXXXXXX.tmp`` (an atomic write of NAME), else None."""
    tail = name[-13:]  # ".XXXXXXXX.tmp"
    if len(name) > 14 and name[0] == "." and tail[0] == "." and _TEMP_TAIL.fullmatch(tail[1:]):
        return name[1:-13]
    return None


def remove_old_temps(folder: PathLike, suffixes: Sequence[str],
                     older_than_s: float) -> List[Path]:
    """Delete temp files of atomic writes into ``folder`` untouched for ``older_than_s``.

    For a folder that several processes write (a shared cache), where a young temp file
    may be a live write's: writers fill theirs at once, so one that old is a killed
    write's. Only this project's own pattern (``.NAME.XXXXXXXX.tmp``, NAME ending in one
    of ``suffixes``) is touched, and only plain files; one that cannot be removed (another
    user's) is left.
    """
    removed = []
    cutoff = time.time() - older_than_s
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet, or one we may not list
        return removed
    for entry in entries:
        target = _temp_target(entry.name)
        if target is None or not any(target.endswith(s) and target != s for s in suffixes):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already (another process swept it), or not ours to remove
            continue
    return removed


class _WriteRecorder:
    """The file handed to the writer: it keeps the OSError of a failed write.

    torch.save turns that error into an opaque RuntimeError ("unexpected pos ..."); so it
    does a KeyboardInterrupt (a second Ctrl-C) raised while it writes, kept here too.
    """

    def __init__(self, fh: Any):
        self.fh = fh
        self.error: Optional[OSError] = None
        self.interrupted = False

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise
        except KeyboardInterrupt:
            self.interrupted = True
            raise

    def flush(self) -> None:
        self.fh.flush()


def _cause(exc: BaseException, recorder: _WriteRecorder, folder: Path,
           needed: int) -> BaseException:
    """Find the real cause of a failed write: the recorded OSError, or a disk too full."""
    if recorder.error is not None:
        return recorder.error
    if not isinstance(exc, OSError) and needed > 0:
        try:
            if shutil.disk_usage(folder).free < needed:  # the file could never have fit
                return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            pass
    return exc


def write_atomic(path: PathLike, fill: Callable[[Any], Any], needed: int = 0) -> Path:
    """Write ``path`` with ``fill(file)``: all of it, or (on any failure) not at all.

    ``needed`` is about how many bytes the file takes; when ``fill`` fails without an
    OSError (torch.save's RuntimeError), less free space than that means a full disk.
    Raises WriteError naming ``path`` and the reason; no temp file is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    umask = os.umask(0)
    os.umask(umask)
    recorder = _WriteRecorder(None)
    try:
        with os.fdopen(fd, "wb") as fh:
            recorder.fh = fh
            # mkstemp makes the file owner-only; ours get ordinary file permissions.
            os.chmod(tmp, 0o666 & ~umask)
            fill(recorder)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        if recorder.interrupted:  # the writer's own wrapping of the KeyboardInterrupt
            raise KeyboardInterrupt from exc
        raise write_error(path, _cause(exc, recorder, path.parent, needed)) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path

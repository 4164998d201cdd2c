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


"""One run at a time in an output folder: an flock the kernel drops when its process dies.

segment-bag, extract-frames and train hold one while they write a folder, so a second run
into it is refused in one line naming the folder and the run that holds it, and a killed
run never leaves a stale lock behind. Where the file system has no locks (NFSv3 without
lockd), a run warns once and goes on unlocked.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from .errors import CanetError

__all__ = ["FolderLock"]

# What flock raises where the file system has no locks: NFSv3 without lockd (ENOLCK), some
# FUSE and network file systems (EOPNOTSUPP, EINVAL, ENOSYS).
NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
_warned: set[int] = set()  # the file systems (st_dev) warned about in this process


class _Unlockable(Exception):
    """flock cannot lock ``fd`` on its file system (``cause``)."""

    def __init__(self, fd: int, cause: OSError):
        super().__init__(cause)
        self.fd, self.cause = fd, cause


class FolderLock:
    """An flock on ``path``, held while a run of ``canet TOOL`` writes ``folder``.

    A one-process run holds it exclusively; the ranks of one sharded run share it (their
    run id is in the file). The kernel drops it when its process dies, so a killed run
    never blocks the next one. ``path`` lies beside ``folder`` where a run may replace the
    whole folder, inside it otherwise. Taking it creates the folders ``path`` lies in; a run
    that ends having written nothing there removes those it created.
    """

    def __init__(self, folder: Path, path: Path, tool: str,
                 error: type[Exception] = CanetError, hint: str = "wait for it to end"):
        self.folder, self.path, self.tool = folder, path, tool
        self.error, self.hint = error, hint
        self.header = f"canet {tool} lock\n"
        self.fd: int | None = None
        self._finalizer: weakref.finalize | None = None
        self._created: list[Path] = []  # folders taking the lock made, deepest first
        self._unlocked = False  # going on without a lock: the file system has none

    def _open(self) -> int:
        for _ in range(5):  # the folder may vanish between mkdir and open (a run ending)
            try:
                missing = _missing(self.path.parent)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._created = missing or self._created
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o644)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._remove_created()
                err = self.error(f"{self.folder}: cannot create its lock file {self.path} "
                                 f"({exc.strerror or exc})")
                # A read-only folder: the tool may say where else to write.
                err.errno = exc.errno  # type: ignore[attr-defined]
                raise err from None
        raise self.error(f"{self.folder}: cannot create its lock file {self.path} (its "
                         f"folder keeps being removed)")

    def _try(self, fd: int, how: int) -> bool:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in NO_LOCKS:
                raise _Unlockable(fd, exc) from None
            raise
        if self._current(fd):
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False

    def _current(self, fd: int) -> bool:
        # The last holder removes the file on release: a lock on that removed file is none.
        try:
            return os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _owner(self, fd: int) -> dict[str, str]:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        if text and not text.startswith(self.header):
            os.close(fd)
            raise self.error(f"{self.path}: exists and is not a canet {self.tool} lock file; "
                             f"refusing to write {self.folder} while it is there")
        pairs = (line.split(": ", 1) for line in text.splitlines()[1:] if ": " in line)
        return dict(pairs)

    def _busy(self, owner: dict[str, str]) -> Exception:
        pid = f" (pid {owner['pid']})" if owner.get("pid") else ""  # unknown for a moment
        return self.error(f"{self.folder}: is being written by another canet {self.tool} "
                          f"run{pid}; {self.hint}")

    def _hold(self, fd: int, run: str | None) -> None:
        self._owner(fd)  # refuses a file that is not ours before writing to it
        os.ftruncate(fd, 0)
        mode = "single" if run is None else f"shard\nrun: {run}"
        os.pwrite(fd, f"{self.header}pid: {os.getpid()}\nmode: {mode}\n".encode(), 0)
        self._held(fd)

    def acquire_exclusive(self) -> None:
        """Hold the lock alone, or refuse at once naming the run that holds it."""
        try:
            self._exclusive(self._open())
        except _Unlockable as exc:
            self._go_unlocked(exc.fd, exc.cause)
        except BaseException:
            self._remove_created()
            raise

    def _exclusive(self, fd: int) -> None:
        for _ in range(20):  # retried only when the file was removed under us
            if self._try(fd, fcntl.LOCK_EX):
                self._hold(fd, None)
                return
            if self._current(fd):
                owner = self._owner(fd)
                os.close(fd)
                raise self._busy(owner)
            os.close(fd)
            fd = self._open()
        os.close(fd)
        raise self.error(f"{self.path}: cannot take the lock (the file keeps being replaced)")

    def acquire_shared(self, run: str, decide: Callable[[], None],
                       wait_s: float = 30.0) -> None:
        """Join the ranks of run ``run``; the first rank in also runs ``decide`` alone.

        Another run holding the lock (one process, or shards with another id) is refused.
        """
        try:
            self._shared(run, decide, wait_s)
            return
        except _Unlockable as exc:
            self._go_unlocked(exc.fd, exc.cause)
        except BaseException:
            self._remove_created()
            raise
        self._decide(decide)  # unlocked: nothing keeps the other ranks out meanwhile

    def _decide(self, decide: Callable[[], None]) -> None:
        try:
            decide()
        except BaseException:
            self.release()
            raise

    def _shared(self, run: str, decide: Callable[[], None], wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        foreign_since: float | None = None
        while True:
            fd = self._open()
            if self._try(fd, fcntl.LOCK_EX):
                self._hold(fd, run)
                self._decide(decide)  # alone: no rank of this run can see the folder half-made
                fcntl.flock(fd, fcntl.LOCK_SH)  # now the other ranks may join
                return
            owner = self._owner(fd)
            ours = owner.get("mode") == "shard" and owner.get("run") == run
            if ours and self._try(fd, fcntl.LOCK_SH):
                self._held(fd)  # a rank of this run decided already, and holds it shared
                return
            os.close(fd)
            now = time.monotonic()
            if not ours:  # or its holder has not written its name yet: look again shortly
                foreign_since = foreign_since or now
                if now - foreign_since > 1.0:
                    raise self._busy(owner)
            else:
                foreign_since = None
            if now > deadline:
                raise self._busy(owner)
            time.sleep(0.05)

    def _held(self, fd: int) -> None:
        self.fd = fd
        # A run that never calls release (its object collected) still lets the next one in.
        self._finalizer = weakref.finalize(self, _drop_lock, self.path, fd)

    def _go_unlocked(self, fd: int, cause: OSError) -> None:
        """Go on without the lock where the file system has none, and say so once."""
        self._owner(fd)  # refuses a file that is not ours before removing it
        where = os.fstat(fd)
        with contextlib.suppress(OSError):  # a lock file that locks nothing only misleads
            if os.stat(self.path, follow_symlinks=False).st_ino == where.st_ino:
                os.unlink(self.path)
        os.close(fd)
        self._unlocked = True
        if where.st_dev not in _warned:  # once: a run may write many folders on that disk
            _warned.add(where.st_dev)
            print(f"canet {self.tool}: warning: {self.folder}: its file system cannot lock "
                  f"files ({cause.strerror or cause}); a second canet {self.tool} run into "
                  f"it is not prevented there: start one at a time", file=sys.stderr)

    def _remove_created(self) -> None:
        for folder in self._created:
            try:
                folder.rmdir()  # only an empty one: anything written there stays
            except OSError:
                break
        self._created = []

    def release(self) -> None:
        """Let the next run in (also done when this object is collected, or the process dies).

        The folders taking the lock created go again if nothing was written into them.
        """
        if self.fd is not None and self._finalizer is not None:
            self.fd = None
            self._finalizer()
        elif not self._unlocked:
            return
        self._unlocked = False
        self._remove_created()


def _missing(folder: Path) -> list[Path]:
    """Return ``folder`` and its parents that do not exist, deepest first."""
    missing, folder = [], folder.absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _drop_lock(path: Path, fd: int) -> None:
    """Remove the lock file if no other run or rank holds it or waits on it, then let go."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass  # held by another rank of this run (or already gone): it stays
    finally:
        os.close(fd)  # drops the lock

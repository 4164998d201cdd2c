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

"""The output-folder locks at the edges.

A folder with no name, folders the lock made, a read-only run folder, a file system
without locks: each was a regression of the locks or a refusal of a run that should go
on. `--out .` ended in a traceback, a refused extract-frames left the empty parents of OUT behind, a
finished run on a read-only disk could not be exported elsewhere, and on NFS without
lockd (ENOLCK) every `canet train` was refused with a bare `[Errno 37]`.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, make_checkpoint
from test_training import make_camvid_tree
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros import folder_lock
from canet_ros.cli import main as canet_main

TOPIC = "/cam/image_raw"


@pytest.fixture()
def one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):  # as a user starts a run
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def no_file_locks(monkeypatch):
    """Make flock fail as it does on NFSv3 without lockd (simulated)."""
    def flock(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", flock)
    # A fresh process: not warned yet.
    monkeypatch.setattr(folder_lock, "_warned", set(), raising=False)


def _extract(src: Path, out: str, ckpt: Path, *more: str) -> list:
    return ["extract-frames", str(src), "--out", out, "--min-interval", "0", "--no-prelabels",
            "--checkpoint", str(ckpt), "--no-progress", *more]


# -- --out . ----------------------------------------------------------------------------------
def test_an_outdir_with_no_name_of_its_own_is_refused_in_one_line(
        tmp_path, capsys, monkeypatch):
    src = camera_bag(tmp_path / "in", n=2, kind="rgb8", topic=TOPIC)
    ckpt = make_checkpoint(tmp_path)
    here = tmp_path / "work" / "empty"  # its parent, "..", does not hold the input
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    for out, more in ((".", ()), ("./", ()), (".", ("--overwrite",)), ("..", ("--overwrite",))):
        assert canet_main(_extract(src, out, ckpt, *more)) == 1
        err = capsys.readouterr().err
        name = str(Path(out))
        assert err == (f"canet extract-frames: error: {name}: names no folder of its own; "
                       f"give the output folder by its name (--out NAME)\n"), err
    # segment-bag, with --overwrite or not: the same line (its lock lies beside OUTDIR too).
    for more in ((), ("--overwrite",)):
        assert canet_main(["segment-bag", str(src), "--out", ".", "--checkpoint", str(ckpt),
                           "--no-progress", *more]) == 1
        assert capsys.readouterr().err == ("canet segment-bag: error: .: names no folder of "
                                           "its own; give the output folder by its name "
                                           "(--out NAME)\n")
    assert list(here.iterdir()) == []
    assert sorted(os.listdir(tmp_path)) == ["in", "tiny.pt", "work"]


# -- folders the lock made --------------------------------------------------------------------
def test_a_refused_extract_frames_leaves_no_folder_it_made(tmp_path, capsys):
    src = camera_bag(tmp_path / "in", n=2, kind="rgb8", topic=TOPIC)
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "new" / "deep" / "out"
    # Refused after the lock was taken (its file lies in new/deep, which did not exist).
    assert canet_main(_extract(src, str(out), ckpt, "--topic", "/nope")) == 1
    assert "/nope" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    # A run that writes OUT keeps the folders it lies in, and its lock file is gone.
    assert canet_main(_extract(src, str(out), ckpt)) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out.parent)) == ["out"]


# -- a read-only run folder -------------------------------------------------------------------
def _read_only_run_folder(monkeypatch, run: Path) -> None:
    """Refuse to create files in ``run`` as a read-only mount does.

    The tests run as root, which chmod does not stop, so the lock file's creation is made to
    fail with the error the kernel gives on a read-only file system.
    """
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if Path(path).parent == run and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_a_finished_run_on_a_read_only_disk_still_exports_elsewhere(
        isolated, capsys, one_process, monkeypatch):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run)) == 0, capsys.readouterr().err
    capsys.readouterr()
    before = sorted(os.listdir(run))
    _read_only_run_folder(monkeypatch, run)
    shipped = isolated / "shipped.pt"
    # "exports, no data set needed": the export lands outside RUN, which is only read.
    assert canet_main(["train", "--resume", str(run / "last.pt"),
                       "--export", str(shipped)]) == 0, capsys.readouterr().err
    assert f"exported {shipped}" in capsys.readouterr().out
    assert shipped.is_file()
    # An export into RUN itself (its model.pt) needs the lock: refused, with the ways out.
    assert canet_main(["train", "--resume", str(run / "last.pt"),
                       "--export-prior-correction", "0.5"]) == 1
    err = capsys.readouterr().err
    assert err == (f"canet train: error: {run}: cannot create its lock file "
                   f"{run / '.canet_train.lock'} (Read-only file system); export to a "
                   f"writable place with --export FILE or --out-dir DIR, or with canet export "
                   f"--format checkpoint --checkpoint {run / 'best.pt'} --out FILE "
                   f"--prior-correction 0.5\n"), err
    # Training more there: pointed at another --out-dir.
    assert canet_main(["train", "--resume", str(run / "last.pt"), "--epochs", "3"]) == 1
    assert capsys.readouterr().err.endswith(
        "(Read-only file system); write this run into a writable --out-dir DIR\n")
    assert sorted(os.listdir(run)) == before


# -- a file system without locks --------------------------------------------------------------
def test_without_file_locks_a_train_run_warns_and_goes_on_unlocked(
        isolated, capsys, one_process, no_file_locks, monkeypatch):  # noqa: F811
    runs = isolated / "runs"
    warning = (f"canet train: warning: {runs / 'nfs'}: its file system cannot lock files (No "
               f"locks available); a second canet train run into it is not prevented there: "
               f"start one at a time\n")
    # Refused for its data, not for the lock; and it leaves no folder behind.
    assert canet_main(flags(isolated / "missing", runs / "nfs")) == 1
    err = capsys.readouterr().err
    assert err.startswith(warning) and err.count("\n") == 2 and "missing" in err, err
    assert not runs.exists()
    root = make_camvid_tree(isolated / "camvid")
    monkeypatch.setattr(folder_lock, "_warned", set(), raising=False)  # a new process
    assert canet_main(flags(root, runs / "nfs", "--max-steps-this-run", "1")) == 0
    assert capsys.readouterr().err.count(warning) == 1
    assert sorted(os.listdir(runs / "nfs")) == ["config.yaml", "last.pt", "log.csv", "tb"]


def test_without_file_locks_extract_frames_and_shards_go_on_unlocked(tmp_path, capsys,
                                                                     no_file_locks):
    src = camera_bag(tmp_path / "in", n=2, kind="rgb8", topic=TOPIC)
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "out"
    assert canet_main(_extract(src, str(out), ckpt)) == 0
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and f"warning: {out}: its file system cannot lock" in err
    assert sorted(os.listdir(tmp_path)) == ["in", "out", "tiny.pt"]  # no lock file beside OUT
    # The ranks of a sharded run: each decides alone (nothing can keep the others out), and
    # a refusal removes the folders the lock made.
    lock = folder_lock.FolderLock(tmp_path / "a" / "b", tmp_path / "a" / "b.lock", "test")
    decided = []
    lock.acquire_shared("run-1", lambda: decided.append(True))
    assert decided == [True] and lock.fd is None
    lock.release()
    assert not (tmp_path / "a").exists()

    def refuse() -> None:
        raise folder_lock.CanetError("refused")

    with pytest.raises(folder_lock.CanetError, match="refused"):
        folder_lock.FolderLock(tmp_path / "c" / "d", tmp_path / "c" / "d.lock",
                               "test").acquire_shared("run-1", refuse)
    assert not (tmp_path / "c").exists()
    assert capsys.readouterr().err == ""  # warned once for this file system already

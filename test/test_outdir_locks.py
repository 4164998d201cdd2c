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

"""One run at a time in a run folder (train) and an OUTDIR (extract-frames).

Two runs into one folder wrote it together: both ended with status 0, log.csv held both
runs' rows, best.pt was one run's and last.pt the other's; a resume started while its run
went on deleted that run's checkpoint temp file; a second extract-frames replaced the
first's output under it. A real second process holds the lock here (as a run would, for
as long as it writes), and a SIGKILL of it leaves no lock behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, make_checkpoint
from test_training import make_camvid_tree
from test_training_resume import flags, isolated, log_rows  # noqa: F401 (a fixture)

from canet_ros.cli import main as canet_main

# Holds the lock a run holds on argv[2] (``train`` or ``extract``) until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
folder = Path(sys.argv[2])
if sys.argv[1] == "train":
    from canet_ros.training.run_folder import lock_run_folder
    lock = lock_run_folder(folder)
else:
    from canet_ros.bag.extract import extract_lock
    lock = extract_lock(folder)
    lock.acquire_exclusive()
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture()
def holder_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):  # one-process runs, as a user starts
        monkeypatch.delenv(name, raising=False)


def _hold(kind: str, folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(folder)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()  # SIGKILL: no release, no clean-up; the kernel drops the flock
    proc.wait(30)


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


# -- canet train ------------------------------------------------------------------------------
def test_a_second_train_into_a_folder_in_use_is_refused(isolated, capsys,  # noqa: F811
                                                        holder_env):
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    holder = _hold("train", run)  # a run that has just started into the new folder
    try:
        assert canet_main(flags(root, run)) == 1
        out, err = capsys.readouterr()
        assert err == (f"canet train: error: {run}: is being written by another canet train "
                       f"run (pid {holder.pid}); wait for it to end, or choose another "
                       f"--out-dir\n"), err
        assert "epoch=" not in out
        # Nothing of this run in the folder: no config.yaml, log.csv, tb/ or checkpoint.
        assert sorted(p.name for p in run.iterdir()) == [".canet_train.lock"]
    finally:
        _kill(holder)
    # The killed holder's lock file stays, but no longer holds anyone off.
    assert (run / ".canet_train.lock").is_file()
    assert canet_main(flags(root, run)) == 0, capsys.readouterr().err
    # The run lets go of its folder when it ends: only what a run folder holds is left.
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "last.pt",
                                                     "log.csv", "tb"]
    assert [row["epoch"] for row in log_rows(run)] == ["1", "2"]


def test_a_resume_while_its_run_goes_on_is_refused_and_deletes_nothing(
        isolated, capsys, holder_env):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--epochs", "3", "--max-steps-this-run", "1")) == 0
    capsys.readouterr()
    holder = _hold("train", run)  # the run goes on: it is writing last.pt's temp file
    try:
        writing = run / ".last.pt.abcd1234.tmp"
        writing.write_bytes(b"half of a checkpoint")
        before = _files(run)
        assert canet_main(["train", "--resume", str(run / "last.pt")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{run}: is being written by another canet train " \
            f"run (pid {holder.pid})" in err, err
        assert _files(run) == before  # the live write's temp file and log.csv untouched
    finally:
        _kill(holder)
    writing.unlink()
    assert canet_main(["train", "--resume", str(run / "last.pt"),
                       "--max-steps-this-run", "1"]) == 0, capsys.readouterr().err
    assert [row["epoch"] for row in log_rows(run)] == ["1"]  # one epoch of 2 steps
    assert not (run / ".canet_train.lock").exists()


def test_a_refused_run_leaves_no_folder_and_other_ranks_take_no_lock(
        isolated, capsys, holder_env, monkeypatch):  # noqa: F811
    from canet_ros.training.run_folder import lock_run_folder

    run = isolated / "runs" / "new"
    # Refused after the lock was taken (no data set there): the folders it made go again.
    assert canet_main(flags(isolated / "missing", run)) == 1
    assert "missing" in capsys.readouterr().err
    assert sorted(p.name for p in isolated.iterdir()) == []
    holder = _hold("train", run)
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")
        assert lock_run_folder(run) is None  # rank 1 never writes the folder: rank 0 locks
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(Exception, match=f"another canet train run .pid {holder.pid}"):
            lock_run_folder(run)
    finally:
        _kill(holder)


# -- canet extract-frames ---------------------------------------------------------------------
def _extract(src: Path, out: Path, ckpt: Path, *more: str) -> list:
    return ["extract-frames", str(src), "--out", str(out), "--min-interval", "0",
            "--no-prelabels", "--checkpoint", str(ckpt), "--no-progress", *more]


def test_a_second_extract_frames_into_an_outdir_in_use_is_refused(tmp_path, capsys):
    src = camera_bag(tmp_path / "in", n=3, kind="rgb8", topic="/cam/image_raw")
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "out"
    holder = _hold("extract", out)  # a run into the new OUTDIR, not yet past its checks
    try:
        assert canet_main(_extract(src, out, ckpt)) == 1
        err = capsys.readouterr().err
        assert err == (f"canet extract-frames: error: {out}: is being written by another "
                       f"canet extract-frames run (pid {holder.pid}); wait for it to end\n")
        assert not out.exists()
    finally:
        _kill(holder)
    assert canet_main(_extract(src, out, ckpt)) == 0, capsys.readouterr().err
    earlier = _files(out)
    assert len(json.loads(earlier["extract.json"])["frames"]) == 3
    # --overwrite while another run writes OUTDIR: refused, the output stays as it was.
    holder = _hold("extract", out)
    try:
        assert canet_main(_extract(src, out, ckpt, "--overwrite", "--max", "1")) == 1
        assert f"canet extract-frames run (pid {holder.pid})" in capsys.readouterr().err
        assert _files(out) == earlier
    finally:
        _kill(holder)
    assert canet_main(_extract(src, out, ckpt, "--overwrite", "--max", "1")) == 0
    assert len(json.loads((out / "extract.json").read_text())["frames"]) == 1
    assert sorted(os.listdir(tmp_path)) == ["in", "out", "tiny.pt"]  # its lock file is gone

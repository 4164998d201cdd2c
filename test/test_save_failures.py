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

"""A failed or killed write: one error line naming the file, and a run that resumes cleanly.

A full disk is simulated two ways: the kernel's per-process file size limit (RLIMIT_FSIZE,
the write() under torch or ONNX fails with EFBIG, as a real full disk fails it with ENOSPC)
and, for torch's opaque error, a torch.save that fails as torch does with a disk reported
full. A kill is a BaseException no layer catches, raised next to the checkpoint save.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from test_training import make_camvid_tree, tiny_config
from test_training_resume import flags, isolated, log_rows  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.training.trainer import Trainer

resource = pytest.importorskip("resource")
signal = pytest.importorskip("signal")
if not hasattr(signal, "SIGXFSZ"):
    pytest.skip("no SIGXFSZ on this system", allow_module_level=True)

EFBIG_TEXT = os.strerror(errno.EFBIG)
ENOSPC_TEXT = os.strerror(errno.ENOSPC)


@pytest.fixture
def file_size_limit():
    """Return a function that caps the size of any file this process writes."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Without this the kernel ends the process with SIGXFSZ instead of failing the write.
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def cap(nbytes: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old_limit[1]))

    yield cap
    resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
    signal.signal(signal.SIGXFSZ, old_handler)


def _one_error_line(err: str, prog: str, path: Path, reason: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines  # no traceback
    assert lines[0] == f"{prog}: error: {path}: cannot write ({reason})"


def _temp_files(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- A: failed writes ------------------------------------------------------------------------
def test_train_whose_last_pt_does_not_fit_names_it(isolated, capsys,  # noqa: F811
                                                   file_size_limit):
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    # best.pt (18 MB) fits, last.pt (55 MB with the Adam state) does not.
    file_size_limit(30 * 2 ** 20)
    assert canet_main(flags(root, run)) == 1
    _one_error_line(capsys.readouterr().err, "canet train", run / "last.pt", EFBIG_TEXT)
    assert not (run / "last.pt").exists() and _temp_files(run) == []
    assert read_checkpoint(run / "best.pt")["metrics"]["epoch"] == 1  # intact


def test_export_checkpoint_that_does_not_fit_is_one_line(tmp_path, capsys, file_size_limit):
    out = tmp_path / "m.pt"
    out.write_bytes(b"earlier export")
    file_size_limit(2 ** 20)  # the bundled model is about 9 MB in fp16
    assert canet_main(["export", "--format", "checkpoint", "--out", str(out)]) == 1
    _one_error_line(capsys.readouterr().err, "canet export", out, EFBIG_TEXT)
    assert out.read_bytes() == b"earlier export" and _temp_files(tmp_path) == []


def test_export_onnx_that_does_not_fit_is_one_line(tmp_path, capsys, file_size_limit):
    out = tmp_path / "m.onnx"
    file_size_limit(2 ** 20)  # the graph is about 10 MB
    assert canet_main(["export", "--out", str(out), "--height", "64", "--width", "96"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("canet export: exporting")  # announced before the work
    _one_error_line("\n".join(err[1:]), "canet export", out, EFBIG_TEXT)
    assert not out.exists() and _temp_files(tmp_path) == []


def test_torchs_opaque_error_on_a_full_disk_says_no_space(tmp_path, capsys, monkeypatch):
    real_save = torch.save

    def save_until_full(obj, f, *args, **kwargs):
        # What torch does on a full disk: part of the archive, then this RuntimeError.
        real_save({"partial": torch.zeros(10)}, f)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                           "40494336 vs 40494228")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", save_until_full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(60 << 20, 60 << 20, 0))
    out = tmp_path / "m.pt"
    assert canet_main(["export", "--format", "checkpoint", "--out", str(out)]) == 1
    _one_error_line(capsys.readouterr().err, "canet export", out, ENOSPC_TEXT)
    assert list(tmp_path.iterdir()) == []


# -- B: a kill next to the end-of-epoch checkpoint -------------------------------------------
class Killed(BaseException):
    """Stands for SIGKILL: nothing in the trainer or the command line handles it."""


def _kill_at_epoch_end(monkeypatch, epoch: int, after_save: bool) -> None:
    real = Trainer.save_last

    def save_last(self):
        at_end = self.epoch == epoch and self.step_in_epoch == 0
        if at_end and not after_save:
            raise Killed
        path = real(self)
        if at_end:
            raise Killed
        return path

    monkeypatch.setattr(Trainer, "save_last", save_last)


def _comparable(rows: list) -> list:
    """Log rows without the wall-clock columns."""
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "epoch_s")} for r in rows]


@pytest.mark.parametrize("after_save", [True, False], ids=["after-save", "before-save"])
def test_a_kill_at_the_end_of_an_epoch_loses_and_repeats_no_log_row(tmp_path, monkeypatch,
                                                                    after_save):
    root = make_camvid_tree(tmp_path / "camvid")
    cfg = {"epochs": 3}
    Trainer(tiny_config(root, tmp_path / "a", **cfg)).fit()
    with monkeypatch.context() as patch:
        _kill_at_epoch_end(patch, 2, after_save)
        with pytest.raises(Killed):
            Trainer(tiny_config(root, tmp_path / "b", **cfg)).fit()
    done = read_checkpoint(tmp_path / "b" / "last.pt")["train_state"]["epoch"]
    assert done == (2 if after_save else 1)
    Trainer(tiny_config(root, tmp_path / "b", resume=str(tmp_path / "b" / "last.pt"),
                        **cfg)).fit()
    straight, resumed = log_rows(tmp_path / "a"), log_rows(tmp_path / "b")
    assert [int(r["epoch"]) for r in resumed] == [1, 2, 3]
    assert _comparable(resumed) == _comparable(straight)


def test_a_resume_removes_the_temp_file_a_kill_inside_a_save_left(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    run = tmp_path / "run"
    Trainer(tiny_config(root, run, max_steps_this_run=1)).fit()
    # The name an atomic save of last.pt writes first (a SIGKILL before its rename).
    fd, stale = tempfile.mkstemp(prefix=".last.pt.", suffix=".tmp", dir=run)
    os.write(fd, b"\0" * 1000)
    os.close(fd)
    others = [run / ".last.pt.tmp", run / "notes.tmp", run / ".last.pt.mine.txt"]
    for path in others:  # not that pattern: not ours to delete
        path.write_text("keep")
    Trainer(tiny_config(root, run, resume=str(run / "last.pt"), max_steps_this_run=1)).fit()
    assert not Path(stale).exists()
    assert all(path.read_text() == "keep" for path in others)


def test_a_second_ctrl_c_inside_torch_save_is_an_interrupt_not_a_write_error(tmp_path):
    # The second Ctrl-C's handler raises KeyboardInterrupt wherever Python runs, also in
    # the file's write() under torch.save, whose C++ writer wrapped it in a RuntimeError
    # ("unexpected pos ...") that read as "cannot write" with exit 1, not "aborted", 130.
    from canet_ros.atomic_write import write_atomic

    class CtrlCOnThirdWrite:
        def __init__(self, fh):
            self.fh, self.calls = fh, 0

        def write(self, data):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return self.fh.write(data)

        def flush(self):
            self.fh.flush()

    def fill(file):
        file.fh = CtrlCOnThirdWrite(file.fh)
        torch.save({"w": torch.zeros(1000, 1000)}, file)

    target = tmp_path / "last.pt"
    target.write_bytes(b"the previous checkpoint")
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, fill)
    assert target.read_bytes() == b"the previous checkpoint"
    assert _temp_files(tmp_path) == []

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

"""A full /dev/shm under DataLoader workers: an error in one line, never a hang.

A container's /dev/shm is 64 MB unless it is given more. Mounting a small one takes root,
so the commands run in a child process where every new shared-memory allocation raises
torch's own error for a full /dev/shm (``FULL_SHM``), as the kernel's ENOSPC makes it do.
"""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_evaluate import _camvid_tree, _tiny_checkpoint
from test_training import make_camvid_tree
from torch.utils.data import DataLoader, Dataset

from canet_ros.cli import main
from canet_ros.cli.shm import shm_exhausted, shm_message
from canet_ros.evaluation import collate_same_size

ENOSPC = ("unable to allocate shared memory(shm) for file </torch_1_2_3>: "
          "No space left on device (28)")

# Prepended to a child's command: a storage not yet in shared memory cannot get there,
# whether allocated in it (default_collate in a worker) or copied in when pickled for the
# worker queue (the feeder thread); one already there is passed on as torch passes it.
FULL_SHM = f"""
import sys
import torch

def full(*args, **kwargs):
    raise RuntimeError({ENOSPC!r})

def sharing(real):
    def share(self, *args, **kwargs):
        if self.is_shared():
            return real(self, *args, **kwargs)
        full()
    return share

S = torch.UntypedStorage
S._new_using_fd_cpu = S._new_using_filename_cpu = classmethod(full)
S._share_fd_cpu_ = sharing(S._share_fd_cpu_)
S._share_filename_cpu_ = sharing(S._share_filename_cpu_)
from canet_ros.cli import main
sys.exit(main(sys.argv[1:]))
"""

HANG_S = 120  # the worst case on a loaded 2-core machine is well under a minute


def canet_with_full_shm(args: list, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``canet ARGS`` in a child whose /dev/shm is full; a hang fails the test."""
    try:
        return subprocess.run([sys.executable, "-c", FULL_SHM, *map(str, args)], cwd=cwd,
                              capture_output=True, text=True, timeout=HANG_S,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"canet {args[0]} still ran {HANG_S} s after /dev/shm filled: "
                    f"stderr {exc.stderr!r}")


def error_lines(stderr: str, command: str) -> list:
    """Lines of stderr other than progress and the data set's statistics."""
    return [line for line in stderr.splitlines()
            if line.startswith(f"canet {command}") or "Error" in line or "Traceback" in line]


def check_one_line(proc: subprocess.CompletedProcess, command: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc.stderr, command)
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(f"canet {command}: error: shared memory (/dev/shm"), line
    assert "--workers 0" in line and "--shm-size=" in line, line


@pytest.fixture(autouse=True)
def forked_workers():
    # The child's patch reaches DataLoader workers only through fork (Linux's default).
    if multiprocessing.get_start_method(allow_none=False) != "fork":
        pytest.skip("DataLoader workers are not forked here")


def test_evaluate_with_workers_reports_a_full_shm_instead_of_waiting(tmp_path):
    root = _camvid_tree(tmp_path / "camvid", frames=4)
    ckpt = _tiny_checkpoint(tmp_path / "m.pt")
    # A network input under 32 px (24x18) takes evaluate's torch path, the one with
    # DataLoader workers, as --prior-correction and --tta-scales do.
    proc = canet_with_full_shm(
        ["evaluate", "--checkpoint", ckpt, "--data-root", root, "--split", "val",
         "--device", "cpu", "--workers", "2", "--batch-size", "2"], tmp_path)
    check_one_line(proc, "evaluate")


def test_train_with_workers_reports_a_full_shm_in_one_line(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    proc = canet_with_full_shm(
        ["train", "--data-root", root, "--out-dir", tmp_path / "run", "--steps", "2",
         "--batch-size", "2", "--crop-size", "48", "32", "--workers", "2", "--threads", "1",
         "--device", "cpu", "--no-progress"], tmp_path)
    check_one_line(proc, "train")


# A RuntimeError, not /dev/shm's (nor out of memory, which is one line of its own:
# test_exhaustion_memory.py).
OTHER = "CUDA error: an illegal memory access was encountered"


def test_another_runtime_error_of_evaluate_keeps_its_message(tmp_path, monkeypatch, capsys):
    import canet_ros.evaluation as evaluation

    def fails(*args, **kwargs):
        raise RuntimeError(OTHER)

    monkeypatch.setattr(evaluation, "evaluate_checkpoint", fails)
    root = _camvid_tree(tmp_path / "camvid", frames=1)
    # Not a full /dev/shm: the error goes on as it was raised (a traceback), never "None".
    with pytest.raises(RuntimeError, match="^CUDA error: an illegal"):
        main(["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--data-root", str(root),
              "--device", "cpu"])
    assert "None" not in capsys.readouterr().err


def test_another_runtime_error_of_train_keeps_its_message(tmp_path, monkeypatch, capsys):
    import canet_ros.training.trainer as trainer

    class Fails:
        def __init__(self, cfg):
            raise RuntimeError(OTHER)

    monkeypatch.setattr(trainer, "Trainer", Fails)
    root = make_camvid_tree(tmp_path / "camvid", frames=1)
    with pytest.raises(RuntimeError, match="^CUDA error: an illegal"):
        main(["train", "--data-root", str(root), "--out-dir", str(tmp_path / "run"),
              "--steps", "1", "--device", "cpu", "--no-progress"])
    assert "None" not in capsys.readouterr().err


class Frames(Dataset):
    """Frames of two sizes (2, 2, then 1 of another), each filled with its index."""

    shapes = [(3, 4, 6), (3, 4, 6), (3, 2, 2)]

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int):
        c, h, w = self.shapes[i]
        return torch.full((c, h, w), float(i)), torch.full((h, w), i, dtype=torch.int64)


def collate_noting_where(samples: list) -> tuple:
    """Collate as eval_loader does, noting whether each run's tensors are in shared memory."""
    runs = collate_same_size(samples)
    return runs, [(images.is_shared(), labels.is_shared()) for images, labels in runs]


def test_same_size_batches_are_built_in_a_workers_shared_memory():
    loader = DataLoader(Frames(), batch_size=3, num_workers=1, collate_fn=collate_noting_where)
    ((runs, shared),) = list(loader)
    # Built in shared memory in the worker, a batch goes over as a handle; one built in
    # ordinary memory is copied there later by a thread whose failure nobody hears of.
    assert shared == [(True, True), (True, True)]
    assert [tuple(images.shape) for images, _ in runs] == [(2, 3, 4, 6), (1, 3, 2, 2)]
    for (images, labels), first in zip(runs, (0, 2), strict=True):
        for k in range(images.shape[0]):
            assert torch.equal(images[k], torch.full(images.shape[1:], float(first + k)))
            assert torch.equal(labels[k], torch.full(labels.shape[1:], first + k))
    # In the main process there is nobody to hand a batch to: ordinary memory.
    runs, shared = collate_noting_where([Frames()[0], Frames()[1]])
    assert shared == [(False, False)] and runs[0][0].shape == (2, 3, 4, 6)


@pytest.mark.parametrize("message", [
    ENOSPC,
    # torch before fallocate, and a worker that found no page behind its mapping (SIGBUS).
    "unable to write to file </torch_28812_1964322305_0>: No space left on device (28)",
    "DataLoader worker (pid 7) is killed by signal: Bus error. It is possible that "
    "dataloader's workers are out of shared memory. Please try to raise your shared "
    "memory limit.",
])
def test_shm_errors_are_told_apart_from_other_runtime_errors(message):
    # The main process gets the worker's error wrapped in its own, traceback text and all.
    wrapped = RuntimeError(f"Caught RuntimeError in DataLoader worker process 0.\n"
                           f"Original Traceback (most recent call last):\n  ...\n"
                           f"RuntimeError: {message}\n")
    assert shm_exhausted(wrapped)
    try:
        raise ValueError("collating") from RuntimeError(message)
    except ValueError as exc:
        assert shm_exhausted(exc)
    text = shm_message(wrapped)
    assert "/dev/shm" in text and "--workers 0" in text and "\n" not in text


@pytest.mark.parametrize("message", [
    # Too many open files wants a higher ulimit, not a larger /dev/shm.
    "unable to open shared memory object </torch_1_2> in read-write mode: Too many open "
    "files (24)",
    "unable to write to file </tmp/x.pt>: No space left on device (28)",
    "CUDA out of memory. Tried to allocate 20.00 MiB",
])
def test_other_errors_are_not_called_a_full_shm(message):
    assert not shm_exhausted(RuntimeError(message))
    assert shm_message(RuntimeError(message)) is None

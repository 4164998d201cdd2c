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

"""Two-process training under torchrun (gloo on CPU).

Exact resume, per-rank augmentation draws, and a resume under another process count
refused before the data loads.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch
from test_training import make_camvid_tree, tiny_config

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli.train import main as train_main
from canet_ros.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="no gloo backend")

# Runs `canet train` recording every scale/crop draw of the training transform, one line a
# sample, in $AUG_LOG.rank<RANK>.txt; the draws themselves are untouched.
RECORDER = '''
import os, sys
import canet_ros.data.transforms as T
log = open(os.environ["AUG_LOG"] + ".rank" + os.environ.get("RANK", "0") + ".txt", "w")
draws, uniform, randint, call = [], T._uniform, T._randint, T.TrainTransform.__call__
def u(lo, hi):
    v = uniform(lo, hi); draws.append(repr(v)); return v
def ri(h):
    v = randint(h); draws.append(repr(v)); return v
def c(self, image, label):
    draws.clear(); out = call(self, image, label)
    log.write(" ".join(draws) + "\\n"); log.flush(); return out
T._uniform, T._randint, T.TrainTransform.__call__ = u, ri, c
from canet_ros.cli.train import main
sys.exit(main(sys.argv[1:]))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(target: List[str], args: List[str], env_extra: dict = None
              ) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **(env_extra or {}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *target, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _train_args(root: Path, out: Path, *extra: str) -> List[str]:
    # 4 frames, 2 processes x batch 1: 2 steps an epoch, 4 in all.
    return ["--data-root", str(root), "--out-dir", str(out), "--epochs", "2",
            "--batch-size", "1", "--crop-size", "48", "32", "--workers", "0", "--threads", "1",
            "--seed", "3", "--lr", "1e-3", "--no-progress", "--no-channels-last",
            "--device", "cpu", *extra]


def test_two_process_resume_is_exact_and_ranks_draw_their_own_augmentation(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid")
    recorder = tmp_path / "record_aug.py"
    recorder.write_text(RECORDER)
    proc = _torchrun([str(recorder)], _train_args(root, tmp_path / "a"),
                     {"AUG_LOG": str(tmp_path / "aug")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Stopped mid-epoch 2 (after rank 0 validated epoch 1), then resumed to the end.
    proc = _torchrun(["-m", "canet_ros.cli.train"],
                     _train_args(root, tmp_path / "b", "--max-steps-this-run", "3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _torchrun(["-m", "canet_ros.cli.train"], ["--resume", str(tmp_path / "b" / "last.pt")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (read_checkpoint(tmp_path / d / "last.pt") for d in ("a", "b"))
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 4
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    # Each rank transformed 4 samples (2 epochs x 2 steps x batch 1); three draws a sample
    # (scale, crop y, crop x). The same draws on both ranks would mean one augmentation
    # stream applied twice: half the variety the global batch should get.
    ranks = [(tmp_path / f"aug.rank{r}.txt").read_text().splitlines() for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 4
    assert all(len(line.split()) == 3 for line in ranks[0] + ranks[1])
    assert all(x != y for x, y in zip(ranks[0], ranks[1], strict=True)), ranks


def test_resume_with_another_process_count_is_refused_before_the_data_loads(
        tmp_path, capsys, monkeypatch):
    root = make_camvid_tree(tmp_path / "camvid")
    # One process stopped mid-epoch, resumed with two: refused. (Each rank refuses, but
    # torchrun stops the other rank once one exits 1, and two ranks' lines can share a
    # line of stderr: at least one whole message, however they interleave.)
    Trainer(tiny_config(root, tmp_path / "one", max_steps_this_run=1)).fit()
    log_one = (tmp_path / "one" / "log.csv").read_text()
    proc = _torchrun(["-m", "canet_ros.cli.train"], ["--resume", str(tmp_path / "one" / "last.pt")])
    assert proc.returncode != 0
    message = (f"canet train: error: {tmp_path / 'one' / 'last.pt'}: was trained with 1 "
               f"process(es), this run has 2; resume with the same number of processes")
    assert message in proc.stderr, proc.stderr[-3000:]
    assert "StopIteration" not in proc.stderr and "resumed from" not in proc.stdout
    assert (tmp_path / "one" / "log.csv").read_text() == log_one
    # Two processes stopped, resumed in one: refused, where it used to halve the global
    # batch and re-aim the schedule.
    proc = _torchrun(["-m", "canet_ros.cli.train"],
                     _train_args(root, tmp_path / "two", "--max-steps-this-run", "2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = read_checkpoint(tmp_path / "two" / "last.pt")["train_state"]
    assert (state["world_size"], state["batch_size"]) == (2, 1)
    before = sorted(p.name for p in (tmp_path / "two").iterdir())
    log_two = (tmp_path / "two" / "log.csv").read_text()
    capsys.readouterr()

    def no_data(*args, **kwargs):
        raise AssertionError("the data set was loaded")

    monkeypatch.setattr("canet_ros.training.trainer.build_data", no_data)
    assert train_main(["--resume", str(tmp_path / "two" / "last.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained with 2 process(es), this run has 1" in err[0], err
    assert "torchrun --nproc_per_node 2" in err[0]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == before
    assert (tmp_path / "two" / "log.csv").read_text() == log_two


# `canet train` whose rank 1 (only) is sent SIGTERM after its first step.
RANK1_TERM = '''
import os, signal, sys
from canet_ros.training.trainer import Trainer
real = Trainer._train_step
def step(self, images, labels):
    out = real(self, images, labels)
    if os.environ.get("RANK") == "1" and self.global_step == 0:
        os.kill(os.getpid(), signal.SIGTERM)
    return out
Trainer._train_step = step
from canet_ros.cli.train import main
sys.exit(main(sys.argv[1:]))
'''


def test_a_stop_asked_of_one_rank_stops_every_rank_with_a_resumable_checkpoint(tmp_path):
    # A scheduler preempting one node of a multi-node job SIGTERMs that node's ranks only,
    # none of which need be rank 0; the others' stop request was dropped (rank 0's alone
    # was shared) and the run trained on to its end.
    root = make_camvid_tree(tmp_path / "camvid", frames=4)
    out = tmp_path / "run"
    args = _train_args(root, out)
    args[args.index("--epochs") + 1] = "40"  # 80 steps, were the stop lost
    script = tmp_path / "rank1_term.py"
    script.write_text(RANK1_TERM)
    proc = _torchrun([str(script)], args)
    assert proc.returncode != 0, proc.stderr[-3000:]  # stopped ranks exit 130 and 143
    assert "interrupt: finishing this step" in proc.stderr + proc.stdout
    state = read_checkpoint(out / "last.pt")["train_state"]
    assert 1 <= state["global_step"] <= 3, proc.stderr[-3000:]

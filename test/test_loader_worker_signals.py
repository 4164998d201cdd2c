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

"""Ctrl-C and SIGTERM to a whole process group while `canet train` has data workers.

A terminal's Ctrl-C reaches every process of its group, and torchrun (``os.killpg``),
systemd and Slurm SIGTERM every process of a job: the workers as well as the trainer.
Each run is a user program in its own session that signals its own group at a chosen
moment, as those senders would; it stops as docs/training.md promises (status 130 or
143, one "interrupt:" notice, the "stopped ... resume with" line, a resumable last.pt).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from test_training import make_camvid_tree
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main
from canet_ros.evaluation import eval_loader
from canet_ros.training.workers import StopSafeLoader

# argv: start method ("default" keeps the platform's), signal name, when ("start": as the
# first data worker is being started; "step": at the start of the second step, mid-epoch),
# then `canet train`'s arguments.
PROGRAM = textwrap.dedent('''\
    import multiprocessing
    import os
    import signal
    import subprocess
    import sys
    import time


    def signal_the_group(signum):
        # Every process of the group, from outside it, as a terminal or torchrun sends it
        # (torch's workers take a SIGTERM from their own parent for a request to exit).
        code = f"import os; os.killpg({os.getpgid(0)}, {int(signum)})"
        subprocess.run([sys.executable, "-c", code], start_new_session=True, check=True)


    def when_a_worker_starts(signum):
        from multiprocessing import forkserver, util

        real_spawn, real_connect = util.spawnv_passfds, forkserver.connect_to_new_process
        fired = []

        def once():
            if not fired:
                fired.append(True)
                signal_the_group(signum)

        def spawned(path, args, passfds):
            pid = real_spawn(path, args, passfds)
            if "spawn_main" in " ".join(map(str, args)):  # a worker, not a helper process
                once()  # it runs and has not yet imported torch
            return pid

        def forked(fds):
            out = real_connect(fds)
            time.sleep(0.3)  # the forkserver forks it meanwhile; it waits for its data
            once()
            return out
        util.spawnv_passfds, forkserver.connect_to_new_process = spawned, forked


    def at_the_second_step(signum):
        from canet_ros.training.trainer import Trainer

        real = Trainer._train_step

        def step(self, images, labels):
            if self.global_step == 1:
                signal_the_group(signum)
                time.sleep(1.0)  # the step's work, while the workers get the signal
            return real(self, images, labels)
        Trainer._train_step = step


    if __name__ == "__main__":
        method, name, when = sys.argv[1:4]
        if method != "default":
            multiprocessing.set_start_method(method)
        signum = getattr(signal, name)
        (when_a_worker_starts if when == "start" else at_the_second_step)(signum)
        from canet_ros.cli import main
        sys.exit(main(sys.argv[4:]))
''')


def _run(tmp_path: Path, method: str, signum: signal.Signals, when: str, frames: int,
         size: tuple, timeout: float = 90) -> tuple:
    root = make_camvid_tree(tmp_path / "camvid", frames=frames, size=size)
    run = tmp_path / "run"
    script = tmp_path / "user_program.py"
    script.write_text(PROGRAM)
    argv = [sys.executable, str(script), method, signum.name, when,
            *flags(root, run, "--workers", "1" if when == "start" else "2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"still running {timeout} s after the signal (hung)\n{out}\n{err[-3000:]}")
    return proc.returncode, out, err, run


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_a_worker_starts_stops_the_run(tmp_path, method, signum, status):
    # spawn (macOS's default) and forkserver (Python 3.14's on Linux): a worker imports
    # torch before it runs anything of ours. One killed meanwhile left the trainer writing
    # the pickled data set into its pipe for good (spawn) or failing with BrokenPipeError,
    # read as a closed stdout: status 141, no checkpoint (forkserver). The data set must
    # not fit the pipe (64 KiB): 4 cached 96x72 frames and labels pickle to 112 KB.
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    rc, out, err, run = _run(tmp_path, method, signum, "start", frames=4, size=(96, 72))
    assert rc == status, (out, err[-3000:])
    assert err.count("interrupt: finishing this step") == 1, err[-3000:]
    assert f"stopped in epoch 1/2 after step 0/2; resume with --resume {run / 'last.pt'}" \
        in out, out
    state = read_checkpoint(run / "last.pt")["train_state"]
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 0, 0)
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_group_signal_mid_epoch_stops_after_the_step_with_forked_workers(
        isolated, signum, status):  # noqa: F811
    # The default start method on Linux (fork). SIGTERM killed the workers (torch's worker
    # handler dies of any SIGTERM not sent by its parent), and torch's SIGCHLD handler then
    # raised "DataLoader worker ... is killed by signal: Terminated" inside the step:
    # status 1, the epoch's steps lost. Ctrl-C printed the notice once per process.
    rc, out, err, run = _run(isolated, "default", signum, "step", frames=8, size=(64, 48))
    assert rc == status, (out, err[-3000:])
    assert err.count("interrupt: finishing this step") == 1, err[-3000:]
    # 8 frames, batch 2: 4 steps an epoch; the signal came in step 2, which still counts.
    assert f"stopped in epoch 1/2 after step 2/4; resume with --resume {run / 'last.pt'}" \
        in out, out
    assert "Traceback" not in err, err[-3000:]
    state = read_checkpoint(run / "last.pt")["train_state"]
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 2, 2)
    if signum == signal.SIGTERM:  # and it resumes: the remaining 6 steps of the 2 epochs
        assert canet_main(["train", "--resume", str(run / "last.pt"), "--workers", "0"]) == 0
        assert read_checkpoint(run / "last.pt")["train_state"]["global_step"] == 8


def _report_mask(queue) -> None:
    queue.put(sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])))


class _Pids(torch.utils.data.Dataset):
    """Frames whose "image" is the pid of the worker that loads it."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int):
        return torch.tensor([os.getpid()]), torch.zeros(1, dtype=torch.int64)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_evaluate_workers_leave_stop_signals_to_the_main_process():
    # `canet evaluate --workers N` uses this loader. A worker got the group's Ctrl-C and
    # SIGTERM (a terminal, torchrun, systemd): KeyboardInterrupt ended it, torch's handler
    # died of the SIGTERM. Now it serves on; its parent's SIGTERM (torch's last resort for
    # a worker that does not leave at shutdown) still ends it at once.
    it = iter(eval_loader(_Pids(), batch_size=1, workers=1))
    pid = int(next(it)[0][0])
    for signum in (signal.SIGINT, signal.SIGTERM):
        subprocess.run([sys.executable, "-c", f"import os; os.kill({pid}, {int(signum)})"],
                       check=True)
    time.sleep(1.0)
    assert _alive(pid) and [int(next(it)[0][0]) for _ in range(3)] == [pid] * 3
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    del it
    assert signal.getsignal(signal.SIGINT) != signal.SIG_IGN  # this process: untouched
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_forkserver_program_keeps_its_later_processes_signalable():
    # Under forkserver (Python 3.14's default on Linux) the workers are spawned instead: a
    # forkserver first started while SIGINT and SIGTERM were held would fork every later
    # process of the program with both blocked, and a Pool's terminate() would hang on it.
    ctx = multiprocessing.get_context("forkserver")
    loader = StopSafeLoader(_Pids(), batch_size=2, num_workers=1, multiprocessing_context=ctx)
    assert len(next(iter(loader))[0]) == 2
    queue = ctx.Queue()
    later = ctx.Process(target=_report_mask, args=(queue,))
    later.start()
    blocked = queue.get(timeout=60)
    later.join(timeout=60)
    assert int(signal.SIGINT) not in blocked and int(signal.SIGTERM) not in blocked


def test_a_broken_pipe_that_is_not_the_output_is_an_error(capsys):
    # A pipe to a worker that died is not `canet ... | head`: one error line, status 1.
    from canet_ros.cli import run_command

    def fails(_args):
        raise BrokenPipeError(32, "Broken pipe")

    assert run_command(fails, None, "canet train") == 1
    err = capsys.readouterr().err
    assert err.startswith("canet train: error: [Errno 32] Broken pipe") and err.count("\n") == 1

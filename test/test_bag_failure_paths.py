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

"""segment-bag when things go wrong: a failing rank, SIGTERM, a full disk at the report.

docs/segment_bag.md promises: a bag that fails does not stop the others (torchrun stops
every rank when one exits nonzero); an interrupted or failed rerun leaves the earlier
output untouched and says so.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, make_checkpoint, read_bag, run_cli, shared_engine

from canet_ros.bag import RankInfo, SegmentOptions, distributed, run_folder, stages
from canet_ros.bag.distributed import RANKS_DIR
from canet_ros.cli import segment_bag as cli

CAM = "/cam/image_raw/compressed"
KEPT = "still holds the earlier run's output, unchanged"


@pytest.fixture(scope="module")
def engine(one_torch_thread):
    return shared_engine()


@pytest.fixture()
def cli_engine(engine, monkeypatch):
    """Make the CLI build the shared test engine instead of loading a checkpoint per run."""
    monkeypatch.setattr(cli, "_engine_factory", lambda args: (lambda: engine))
    return engine


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def disk_full_on(monkeypatch, path: Path) -> None:
    """Make writing ``path`` fail as on a full disk: the file is created empty, then ENOSPC."""
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.resolve() == path.resolve():
            self.write_bytes(b"")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


# -- A: a rank whose bag failed, SIGTERM ---------------------------------------------------
def test_a_rank_whose_bag_failed_exits_0_and_rank_0_reports_it(cli_engine, tmp_path,
                                                               monkeypatch, capsys):
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "a", n=3, topic=CAM)  # rank 0's
    (folder / "b.db3").write_bytes(os.urandom(4096))  # rank 1's: not a database
    out = tmp_path / "out"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("CANET_RUN_ID", "failing-rank")
    monkeypatch.setenv("RANK", "1")
    rc1, _, err1 = run_cli([str(folder), "--out", str(out), "--no-progress"], capsys)
    # Exit 1 here would make torchrun SIGTERM rank 0 in the middle of its bag.
    assert rc1 == 0, err1
    assert "b.db3" in err1  # the failure is still said on this rank's stderr
    monkeypatch.setenv("RANK", "0")
    rc0, _, err0 = run_cli([str(folder), "--out", str(out), "--no-progress", "--json"],
                           capsys)
    assert rc0 == 1  # the run as a whole had a failure: docs, exit code 1
    assert "b.db3" in err0
    merged = json.loads((out / "report.json").read_text())
    assert [Path(f["bag"]).name for f in merged["failed"]] == ["b.db3"]
    assert merged["failed"][0]["rank"] == 1 and merged["failed"][0]["status"] == "failed"
    assert merged["frames"] == 3 == json.loads((out / "a" / "report.json").read_text())["frames"]
    assert not (out / RANKS_DIR).exists()  # rank 0 merged and removed the done files


class _Stopped:
    """The engine, but Ctrl-C (or torchrun's SIGTERM) arrives with the second frame."""

    def __init__(self, engine):
        self._engine, self.calls = engine, 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self._engine.infer(*args, **kwargs)


def test_a_stopped_rank_0_does_not_wait_for_a_dead_rank(engine, tmp_path, monkeypatch):
    # torchrun SIGTERMs rank 0 when rank 1 died: rank 1 never leaves its done file, and
    # torchrun kills rank 0 30 s later; its merged report must be written before that.
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "a", n=3, topic=CAM)  # rank 0's
    camera_bag(folder / "b", n=3, topic=CAM)  # rank 1's, which is dead
    monkeypatch.setattr(distributed, "STOPPED_WAIT_S", 0.5, raising=False)
    monkeypatch.setenv("CANET_RUN_ID", "dead-rank")
    out = tmp_path / "out"
    result: list[dict] = []
    rank0 = threading.Thread(target=lambda: result.append(run_folder(
        folder, SegmentOptions(folder, out), lambda: _Stopped(engine), RankInfo(0, 2),
        poll_s=0.05)), daemon=True)
    rank0.start()
    rank0.join(timeout=30)
    assert result, "rank 0 still waits for a rank that will never finish"
    merged = result[0]
    assert merged["interrupted"] is True and merged["ranks_missing"] == [1]
    assert merged["frames"] == 1 == json.loads((out / "a" / "report.json").read_text())["frames"]
    assert json.loads((out / "report.json").read_text())["ranks_missing"] == [1]


SLOW_RUN = """
import pathlib, sys, time
from canet_ros.inference import SegmentationEngine
from canet_ros.cli.segment_bag import main
infer, output_bag = SegmentationEngine.infer, pathlib.Path(sys.argv[1])
def slow(self, *args, **kwargs):
    if output_bag.exists():  # not the engine's own warm-up: the bag's frames
        output_bag.with_name("segmenting").touch()
        time.sleep(0.05)
    return infer(self, *args, **kwargs)
SegmentationEngine.infer = slow
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signum, expected", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_stops_like_ctrl_c_and_writes_the_outputs(tmp_path, signum, expected):
    checkpoint = make_checkpoint(tmp_path)
    bag = camera_bag(tmp_path / "in", n=300, topic=CAM)
    out = tmp_path / "out"
    marker = out / "segmenting"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, str(out / "in_segmented"), str(bag), "--out", str(out),
         "--checkpoint", str(checkpoint), "--device", "cpu", "--precision", "fp32",
         "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a SIGINT ignored by a background shell would be inherited; give Python its own
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=60)
        time.sleep(0.3)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == expected, err
    assert (out / "report.json").is_file(), err
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True and 0 < report["frames"] < 300
    assert report["complete"] is False
    labels = read_bag(Path(report["output_bag"]))["/cam/segmentation/labels"]
    assert len(labels) == report["frames"]  # the output bag is closed and readable
    assert (out / "report.md").is_file()


# -- B: a full disk when the report is written ---------------------------------------------
def test_failed_overwrite_rerun_keeps_the_earlier_output_and_says_so(cli_engine, tmp_path,
                                                                     monkeypatch, capsys):
    bag = camera_bag(tmp_path / "in", n=3, topic=CAM)
    out = tmp_path / "out"
    rc, _, err = run_cli([str(bag), "--out", str(out), "--no-progress"], capsys)
    assert rc == 0, err
    before = digests(out)
    disk_full_on(monkeypatch, out.with_name("out.partial") / "report.json")
    rc, _, err = run_cli([str(bag), "--out", str(out), "--no-progress", "--overwrite"], capsys)
    assert rc == 1
    assert "cannot write the report" in err and os.strerror(errno.ENOSPC) in err
    assert f"{out} {KEPT}" in err
    assert digests(out) == before
    assert not out.with_name("out.partial").exists()


def test_failed_overwrite_of_a_folder_of_bags_keeps_the_earlier_output(
        cli_engine, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "a", n=2, topic=CAM)
    out = tmp_path / "out"
    rc, _, err = run_cli([str(folder), "--out", str(out), "--no-progress"], capsys)
    assert rc == 0, err
    before = digests(out)
    # The bag's own report is written; the merged one, last, finds the disk full.
    disk_full_on(monkeypatch, out.with_name("out.partial") / "report.json")
    rc, _, err = run_cli([str(folder), "--out", str(out), "--no-progress", "--overwrite"],
                         capsys)
    assert rc == 1
    assert f"{out} {KEPT}" in err
    assert digests(out) == before
    assert not out.with_name("out.partial").exists()


def test_first_run_names_the_first_failure_and_leaves_no_empty_report(cli_engine, tmp_path,
                                                                      monkeypatch, capsys):
    bag = camera_bag(tmp_path / "in", n=4, topic=CAM)
    out = tmp_path / "out"
    write, calls = stages.WriterThread._write, []

    def disk_fills(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, *args)

    monkeypatch.setattr(stages.WriterThread, "_write", disk_fills)
    disk_full_on(monkeypatch, out / "report.json")
    rc, _, err = run_cli([str(bag), "--out", str(out), "--no-progress"], capsys)
    assert rc == 1
    line = next(text for text in err.splitlines()
                if text.startswith("canet segment-bag: error:"))
    # the bag's failure first (the cause), then the report's
    assert "writing failed" in line and "cannot write the report" in line
    assert line.index("writing failed") < line.index("cannot write the report")
    for name in ("report.json", "report.md", "legend.png", "iou.png"):
        assert not (out / name).exists(), name

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

"""OUTDIR safety across processes: sharded ranks, concurrent runs, --json per rank.

The ranks run as real processes (RANK / WORLD_SIZE / LOCAL_RANK and a shared CANET_RUN_ID,
as shards started by hand), so their start order is not arranged by the test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, make_checkpoint, run_cli

from canet_ros.bag.outdir import MARKER

CAM = "/cam/image_raw/compressed"
GT = "/cam/ground_truth"
TINY = "64x48"


@pytest.fixture()
def setup(tmp_path):
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "a", n=2, topic=CAM, gt_topic=GT)
    camera_bag(folder / "b", n=3, topic=CAM, gt_topic=GT)
    return folder, make_checkpoint(tmp_path)


def _ranks(folder: Path, out: Path, ckpt: Path, *extra: str, run_id: str = "r1") -> list:
    """Both ranks of one sharded run, started together; [(rc, stdout, stderr)] by rank."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "CANET_RUN_ID": run_id}
    env.pop("TORCHELASTIC_RUN_ID", None)
    argv = [sys.executable, "-m", "canet_ros.cli.segment_bag", str(folder), "--out", str(out),
            "--checkpoint", str(ckpt), "--gt-topic", GT, "--device", "cpu", "--precision",
            "fp32", "--resolution", TINY, "--no-progress", *extra]
    procs = [subprocess.Popen(argv, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    results = []
    for proc in procs:
        try:
            out_text, err_text = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        results.append((proc.returncode, out_text, err_text))
    return results


def test_sharded_run_refuses_a_folder_it_did_not_write(setup, tmp_path):
    folder, ckpt = setup
    out = tmp_path / "foreign"
    (out / "my_notes").mkdir(parents=True)
    (out / "precious.txt").write_text("important")
    (out / "my_notes" / "n.txt").write_text("x")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    for extra in ((), ("--overwrite",)):
        for rank, (rc, _, err) in enumerate(_ranks(folder, out, ckpt, *extra)):
            assert rc == 1, (rank, extra, err)
            assert "not written by canet segment-bag" in err, (rank, extra, err)
        # Nothing written into it, so no later --overwrite can take it for ours.
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
        assert not (out / MARKER).exists()
    assert (out / "precious.txt").read_text() == "important"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags", "foreign", "tiny.pt"]


def test_only_rank0_prints_json_and_ranks_of_one_run_share_outdir(setup, tmp_path):
    folder, ckpt = setup
    out = tmp_path / "out"
    (rc0, out0, err0), (rc1, out1, err1) = _ranks(folder, out, ckpt, "--json")
    assert rc0 == 0 and rc1 == 0, (err0, err1)
    assert out1 == ""  # rank 1's bag is named on stderr
    assert "rank 1:" in err1 and "b: ok" in err1
    merged = json.loads(out0)  # exactly one JSON document
    assert isinstance(merged, dict) and merged["frames"] == 2 + 3
    assert (out / "a" / "report.json").is_file() and (out / "b" / "report.json").is_file()
    # The lock file is gone once both ranks ended.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags", "out", "tiny.pt"]
    # A second sharded run (another id) without --overwrite: both ranks refuse it.
    results = _ranks(folder, out, ckpt, "--json", run_id="r2")
    assert [rc for rc, _, _ in results] == [1, 1], results
    assert all("--overwrite" in err for _, _, err in results)


HOLDER = """
import sys
from pathlib import Path
from canet_ros.bag.outdir import StagedOutdir
staged = StagedOutdir(Path(sys.argv[1]), overwrite=True)
print(staged.path, flush=True)
sys.stdin.readline()
"""


def test_a_second_run_is_refused_while_one_writes_outdir(setup, tmp_path, capsys, monkeypatch):
    folder, ckpt = setup
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    bag, out = folder / "a", tmp_path / "cc"
    argv = [str(bag), "--out", str(out), "--checkpoint", str(ckpt), "--gt-topic", GT,
            "--device", "cpu", "--precision", "fp32", "--resolution", TINY, "--no-progress",
            "--overwrite"]
    assert run_cli(argv, capsys)[0] == 0
    earlier = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}
    # Run A: an --overwrite run that is writing cc.partial (here, one that waits there).
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        partial = Path(holder.stdout.readline().strip())
        assert partial == tmp_path / "cc.partial" and (partial / MARKER).is_file()
        (partial / "a_segmented").mkdir()  # what run A has written so far
        rc, stdout, err = run_cli(argv, capsys)
        assert rc == 1 and stdout == ""
        assert f"being written by another canet segment-bag run (pid {holder.pid})" in err
        assert len(err.strip().splitlines()) == 1, err
        assert (partial / "a_segmented").is_dir() and (partial / MARKER).is_file()
        assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")} == earlier
        # A sharded run is refused the same way.
        for _, _, rank_err in _ranks(folder, out, ckpt, "--overwrite"):
            assert f"another canet segment-bag run (pid {holder.pid})" in rank_err
    finally:
        holder.kill()  # killed while holding the lock: the kernel drops it
        holder.wait(30)
    assert run_cli(argv, capsys)[0] == 0  # a dead run's lock does not block
    assert (out / "a_segmented" / "metadata.yaml").is_file()
    assert not (tmp_path / "cc.partial").exists()

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

"""SIGTERM (docker stop, systemd, a scheduler's preemption) stops any command as Ctrl-C.

segment-bag's own case is in test_bag_failure_paths.py; these are the other long jobs.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_bag_damaged_formats import row_pages
from test_bag_helpers import camera_bag

from canet_ros.cli import EXIT_INTERRUPTED, EXIT_TERMINATED

CAM = "/cam/image_raw"
# ``canet ARGS`` with each extracted image announced and slowed, so the signal lands
# while frames are being written.
SLOW_EXTRACT = """
import sys, time
import canet_ros.bag.extract as extract
real = extract.save_image

def slow(path, image):
    real(path, image)
    print("wrote", path, flush=True)
    time.sleep(0.3)

extract.save_image = slow
from canet_ros.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cut_sqlite_bag(folder):
    """Write a sqlite3 recording cut short: reading it goes through salvage's $TMPDIR copy."""
    bag = camera_bag(folder, n=30, fmt="sqlite3", kind="rgb8", topic=CAM)
    db = bag / f"{folder.name}.db3"
    data = db.read_bytes()
    _, page = row_pages(db)
    db.write_bytes(data[:int(len(data) * 0.9) // page * page + page // 2])
    return bag


@pytest.mark.parametrize("signum, expected", [(signal.SIGTERM, EXIT_TERMINATED),
                                              (signal.SIGINT, EXIT_INTERRUPTED)])
def test_extract_frames_stopped_leaves_its_frames_and_no_temporary_copy(
        tmp_path, signum, expected):
    bag = cut_sqlite_bag(tmp_path / "rec")
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_EXTRACT, "extract-frames", str(bag), "--out", str(out),
         "--topic", CAM, "--no-prelabels", "--min-interval", "0", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline, wrote = time.monotonic() + 120, 0
        while wrote < 3 and proc.poll() is None and time.monotonic() < deadline:
            wrote += proc.stdout.readline().startswith("wrote")
        assert any(tmp.glob("canet_salvage_*")), "the salvage copy was not made in TMPDIR"
        proc.send_signal(signum)
        stdout, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == expected, err
    assert "Traceback" not in err
    assert not any(tmp.glob("canet_salvage_*"))  # the bag's temporary copy is gone
    report = json.loads(stdout[stdout.index("{"):])
    assert report["interrupted"] is True and 0 < report["frames"] < 30
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == sorted(report["stems"])

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

"""A sqlite3 output bag keeps its whole frames when the writer is killed or the disk fills.

What the file holds is read back three independent ways: Python's sqlite3 opening a copy
normally (so SQLite itself rolls back a hot journal, as any writer opening it would),
rosbags' own readers, and the project's reader (salvage, for a bag without metadata.yaml).
A full disk is made deterministic with SQLite's ``PRAGMA max_page_count`` on the output's
connection: inserts then fail with SQLITE_FULL ("database or disk is full").
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import storage_sqlite3
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader
from test_bag_helpers import HUMBLE, camera_bag, header, image_array, run_cli, shared_engine

from canet_ros.bag.reader import InputBag
from canet_ros.bag.writer import OutputBag, OutputTopics
from canet_ros.classes import CAMVID

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "/cam/image_raw"
SEG = "/cam/segmentation"
OUTPUTS = (f"{SEG}/labels", f"{SEG}/color", f"{SEG}/overlay")

# Writes N whole frames with an input copy, keeps a copy of the .db3 as then committed, writes
# the outputs of one more (7 MB: more than SQLite's 2 MB page cache, which it would spill into
# the file) and dies by SIGKILL before that frame's input copy, never closing the bag.
CHILD = """
import os, signal, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[3])
from test_bag_helpers import HUMBLE, header
from canet_ros.bag.writer import OutputBag, OutputTopics
from canet_ros.classes import CAMVID
from test_bag_sqlite_durability import TOPIC, frame_arrays, input_image
out = OutputBag(Path(sys.argv[1]), "sqlite3", OutputTopics.for_input(TOPIC),
                (TOPIC, "sensor_msgs/msg/Image"))
out.describe_classes(CAMVID)
out.create()
n = int(sys.argv[2])
for i in range(n + 1):
    size = (48, 64) if i < n else (1000, 1000)
    if i == n:  # the file as committed after the last whole frame
        db3 = out.storage_file
        db3.with_name("committed").write_bytes(db3.read_bytes())
    labels, color = frame_arrays(i, size)
    out.write_frame(10**9 * (i + 1), header(HUMBLE, i), labels, color, color, "rgb")
    if i < n:
        out.write_input(10**9 * (i + 1), HUMBLE.serialize_cdr(
            input_image(i), "sensor_msgs/msg/Image"), None)
os.kill(os.getpid(), signal.SIGKILL)
"""


def frame_arrays(i: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Labels all equal to i % 11 and a colour image, so each frame is recognisable."""
    labels = np.full(size, i % 11, np.uint8)
    color = np.zeros((*size, 3), np.uint8)
    color[..., 1] = i
    return labels, color


def input_image(i: int) -> object:
    return HUMBLE.types["sensor_msgs/msg/Image"](
        header=header(HUMBLE, i), height=2, width=2, encoding="mono8", is_bigendian=0,
        step=2, data=np.full(4, i, np.uint8))


def recovered_rows(bag: Path) -> dict[str, list[bytes]]:
    """Topic -> data rows, as SQLite sees the file once a hot journal is rolled back."""
    copy = bag.parent / f"{bag.name}_copy"
    shutil.copytree(bag, copy)  # the .db3 with its -journal, so SQLite finds and replays it
    db3, = copy.glob("*.db3")
    with sqlite3.connect(db3) as db:
        rows = db.execute("SELECT topics.name, messages.data FROM messages JOIN topics "
                          "ON messages.topic_id = topics.id ORDER BY messages.id").fetchall()
    out: dict[str, list[bytes]] = {}
    for topic, data in rows:
        out.setdefault(topic, []).append(data)
    return out


def rosbags_counts(bag: Path) -> Counter:
    """Per-topic messages through rosbags' sqlite3 reader (immutable: no journal replay)."""
    db3, = bag.glob("*.db3")
    reader = Sqlite3Reader(db3)
    reader.open()
    try:
        return Counter(conn.topic for conn, _, _ in reader.messages(reader.connections))
    finally:
        reader.close()


def test_sigkill_keeps_the_committed_frames(tmp_path):
    bag, n = tmp_path / "out", 3
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bag), str(n),
                           str(ROOT / "test")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'test'}"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (bag / "metadata.yaml").exists()  # never closed
    # The unfinished frame never reached the .db3 (only memory and the journal), so
    # readers that open it immutable, ignoring the journal, see the last commit exactly.
    assert (bag / "out.db3").read_bytes() == (bag / "committed").read_bytes()

    rows = recovered_rows(bag)
    for topic in OUTPUTS:
        assert len(rows.get(topic, [])) == n, (topic, {k: len(v) for k, v in rows.items()})
    assert len(rows[TOPIC]) == n and len(rows[f"{SEG}/label_info"]) == 1
    labels = [image_array(HUMBLE.deserialize_cdr(d, "sensor_msgs/msg/Image"))
              for d in rows[f"{SEG}/labels"]]
    for i, array in enumerate(labels):
        np.testing.assert_array_equal(array, frame_arrays(i, (48, 64))[0])

    assert rosbags_counts(bag) == Counter({**{t: n for t in (*OUTPUTS, TOPIC)},
                                           f"{SEG}/label_info": 1})
    with InputBag(bag, True) as salvaged:
        for topic in (*OUTPUTS, TOPIC):
            assert sum(1 for _ in salvaged.messages(topic)) == n, topic


@pytest.fixture
def page_limit(monkeypatch):
    """Cap the output database's pages (4 KiB each): SQLite's own 'disk full'."""
    real = sqlite3.connect
    limits: dict[str, int] = {}

    def connect(database, *args, **kwargs):
        conn = real(database, *args, **kwargs)
        for folder, pages in limits.items():
            if folder in str(database):
                conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(storage_sqlite3.sqlite3, "connect", connect)
    return limits


def check_file_matches_metadata(bag: Path, frames: int, seg: str = SEG) -> None:
    """Check that the rows, metadata.yaml and rosbags' AnyReader all say ``frames``."""
    rows = recovered_rows(bag)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    said = {t["topic_metadata"]["name"]: t["message_count"]
            for t in info["topics_with_message_count"]}
    assert {t: len(v) for t, v in rows.items()} == {t: c for t, c in said.items() if c}
    assert info["message_count"] == sum(map(len, rows.values()))
    for name in ("labels", "color", "overlay"):
        assert len(rows[f"{seg}/{name}"]) == frames, name
    with AnyReader([bag], default_typestore=HUMBLE) as reader:
        got = Counter(c.topic for c, _, _ in reader.messages())
    assert got == Counter({t: len(v) for t, v in rows.items()})


def test_full_database_keeps_whole_frames_and_counts_them(tmp_path, page_limit):
    bag = tmp_path / "out"
    page_limit[str(bag)] = 60  # ~240 KiB: room for a few 100x100 frames (~70 KB each)
    out = OutputBag(bag, "sqlite3", OutputTopics.for_input(TOPIC))
    out.describe_classes(CAMVID)
    out.create()
    written = 0
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for i in range(100):
            labels, color = frame_arrays(i, (100, 100))
            out.write_frame(10**9 * (i + 1), header(HUMBLE, i), labels, color, color, "rgb")
            written += 1
    assert written >= 1
    try:
        out.close()
    except Exception:  # noqa: BLE001 - the metadata row may not fit either; checked below
        pass
    check_file_matches_metadata(bag, written)
    assert out.frames == out.committed_frames == written


def test_segment_bag_on_a_full_disk_reports_the_frames_in_the_file(tmp_path, page_limit,
                                                                   capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    source = camera_bag(tmp_path / "in", n=20)
    page_limit[str(tmp_path / "run")] = 40  # 64x48 frames: 5+ pages each, 20 do not fit
    engine = shared_engine()
    from canet_ros.cli import segment_bag as cli

    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    rc, out, err = run_cli([str(source), "--out", str(tmp_path / "run"), "--storage",
                            "sqlite3", "--no-progress", "--json"], capsys)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rc != 0 and "full" in report["error"], (rc, err)
    assert 1 <= report["frames"] < 20
    check_file_matches_metadata(Path(report["output_bag"]), report["frames"],
                                "/cam_front/segmentation")

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

"""``--overwrite`` replaces an earlier output only once the new run is complete.

The earlier run's files are fingerprinted (every path and its bytes) before the rerun; an
interrupted or failed rerun must leave exactly those, and nothing beside them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bag_helpers import camera_bag, read_bag, run_cli, shared_engine

from canet_ros.bag import RankInfo, SegmentOptions, run_folder

CAM = "/cam/image_raw/compressed"
LABELS = "/cam/segmentation/labels"


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def _fingerprint(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _interrupt_after(engine, k: int, monkeypatch) -> None:
    real, calls = engine.infer, {"n": 0}

    def infer(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > k:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "infer", infer)


def _cli(tmp_path, capsys, monkeypatch, engine, src, *extra):
    from canet_ros.cli import segment_bag as cli

    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    return run_cli([str(src), "--out", str(tmp_path / "out"), "--json", *extra], capsys)


def test_interrupted_rerun_keeps_the_earlier_output(engine, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    first = camera_bag(tmp_path / "rec", n=5, topic=CAM)
    assert _cli(tmp_path, capsys, monkeypatch, engine, first)[0] == 0
    before = _fingerprint(out)
    _interrupt_after(engine, 2, monkeypatch)
    rc, stdout, err = _cli(tmp_path, capsys, monkeypatch, engine, first, "--overwrite")
    assert rc == 130 and "Traceback" not in err
    assert f"{out} still holds the earlier run's output" in err
    assert json.loads(stdout)["previous_output_kept"] == str(out)
    assert _fingerprint(out) == before  # every file, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "rec"]  # nothing beside
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 5 and report["complete"]


def test_failed_rerun_keeps_the_earlier_output(engine, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    src = camera_bag(tmp_path / "rec", n=3, topic=CAM)
    assert _cli(tmp_path, capsys, monkeypatch, engine, src)[0] == 0
    before = _fingerprint(out)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine, "infer", broken)
    rc, _, err = _cli(tmp_path, capsys, monkeypatch, engine, src, "--overwrite")
    assert rc == 1 and "inference failed" in err and "earlier run's output" in err
    assert _fingerprint(out) == before
    assert not (tmp_path / "out.partial").exists()


def test_complete_rerun_replaces_and_the_report_names_the_final_folder(
        engine, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert _cli(tmp_path, capsys, monkeypatch, engine,
                camera_bag(tmp_path / "a", n=2, topic=CAM))[0] == 0
    (out / "a_segmented").rename(out / "stale_file_of_the_first_run")
    rc, stdout, _ = _cli(tmp_path, capsys, monkeypatch, engine,
                         camera_bag(tmp_path / "rec", n=4, topic=CAM), "--overwrite")
    assert rc == 0 and json.loads(stdout)["frames"] == 4
    assert not (out / "stale_file_of_the_first_run").exists()
    assert not (tmp_path / "out.partial").exists() and not (tmp_path / "out.old").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["output_bag"] == str((out / "rec_segmented").resolve())
    assert len(read_bag(Path(report["output_bag"]))[LABELS]) == 4


def test_a_foreign_folder_where_the_new_run_would_go_is_refused(
        engine, tmp_path, capsys, monkeypatch):
    src = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    assert _cli(tmp_path, capsys, monkeypatch, engine, src)[0] == 0
    (tmp_path / "out.partial").mkdir()
    (tmp_path / "out.partial" / "notes.txt").write_text("mine")
    rc, stdout, err = _cli(tmp_path, capsys, monkeypatch, engine, src, "--overwrite")
    assert rc == 1 and stdout == "" and "out.partial" in err and "refusing to delete" in err
    assert (tmp_path / "out.partial" / "notes.txt").read_text() == "mine"


def test_interrupted_folder_rerun_keeps_the_earlier_output(engine, tmp_path, monkeypatch):
    bags = tmp_path / "bags"
    for name in ("a", "b"):
        camera_bag(bags / name, n=2, topic=CAM)
    out = tmp_path / "out"
    template = SegmentOptions(bags, out)
    first = run_folder(bags, template, lambda: engine, RankInfo(0, 1))
    assert first["frames"] == 4
    before = _fingerprint(out)
    _interrupt_after(engine, 3, monkeypatch)
    again = run_folder(bags, SegmentOptions(bags, out, overwrite=True), lambda: engine,
                       RankInfo(0, 1))
    assert again["interrupted"] and again["previous_output_kept"] == str(out)
    assert _fingerprint(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags", "out"]
    monkeypatch.undo()
    done = run_folder(bags, SegmentOptions(bags, out, overwrite=True), lambda: engine,
                      RankInfo(0, 1))
    assert done["frames"] == 4 and not done["interrupted"]
    per_bag = json.loads((out / "a" / "report.json").read_text())
    assert per_bag["output_bag"] == str(out.resolve() / "a" / "a_segmented")
    assert len(read_bag(Path(per_bag["output_bag"]))[LABELS]) == 2

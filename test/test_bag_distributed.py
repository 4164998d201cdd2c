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

"""A folder of bags split across two torchrun-style ranks and merged by rank 0.

RANK/WORLD_SIZE are set by hand, in-process; each bag goes to OUTDIR/<bag>/.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_bag_helpers import (
    HUMBLE,
    Msg,
    camera_bag,
    compressed_image,
    hand_iou,
    image_array,
    label_image,
    labels_for,
    make_checkpoint,
    raw_image,
    read_bag,
    receive_ns,
    run_cli,
    shared_engine,
    write_bag,
)

from canet_ros.bag import BagError, RankInfo, SegmentOptions, run_folder
from canet_ros.bag.distributed import RANKS_DIR, find_bags, output_names
from canet_ros.classes import CAMVID

CAM = "/cam/image_raw/compressed"
GT = "/cam/ground_truth"


@pytest.fixture()
def bag_folder(tmp_path):
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "a", n=3, topic=CAM, gt_topic=GT)
    camera_bag(folder / "b.bag", n=2, fmt="ros1", topic=CAM, gt_topic=GT, gt_skip=(1,))
    camera_bag(folder / "c", n=2, fmt="sqlite3", topic=CAM, gt_topic=GT)
    (folder / "notes.txt").write_text("not a bag")
    return folder


def check_merged(out: Path, merged: dict) -> None:
    per_bag = {name: json.loads((out / name / "report.json").read_text())
               for name in ("a", "b", "c")}
    assert merged["frames"] == 7 == sum(r["frames"] for r in per_bag.values())
    total = sum(np.asarray(r["confusion_matrix"]) for r in per_bag.values())
    assert np.array_equal(np.asarray(merged["confusion_matrix"]), total)
    preds, gts = [], []
    for name, n, skip in (("a", 3, ()), ("b", 2, (1,)), ("c", 2, ())):
        bag = read_bag(Path(per_bag[name]["output_bag"]))
        labels = bag["/cam/segmentation/labels"]
        assert len(labels) == n
        for i in range(n):
            if i not in skip:
                preds.append(image_array(labels[i][1]))
                gts.append(labels_for(i))
    ious, miou, acc = hand_iou(preds, gts, 11, 11)
    assert merged["miou"] == pytest.approx(miou) and merged["global_acc"] == pytest.approx(acc)
    assert merged["per_class"] == pytest.approx({CAMVID.names[c]: v for c, v in ious.items()})
    assert merged["ground_truth"]["frames_with_gt"] == 6
    assert merged["ground_truth"]["frames_without_gt"] == 1
    assert merged["failed"] == [] and merged["world_size"] == 2
    assert {b["rank"] for b in merged["bags"]} == {0, 1}
    assert merged["fps"] > 0 and merged["model_fps"] > 0
    assert json.loads((out / "report.json").read_text()) == merged
    assert (out / "report.md").is_file() and not (out / RANKS_DIR).exists()


def test_two_ranks_from_env_through_the_cli(bag_folder, tmp_path, capsys, monkeypatch):
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "out"
    argv = [str(bag_folder), "--out", str(out), "--checkpoint", str(ckpt), "--gt-topic", GT,
            "--json"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    rc, stdout, err = run_cli(argv, capsys)
    assert rc == 0 and stdout == ""  # only rank 0 prints JSON: one object on stdout
    assert "b.bag: ok" in err and "a: ok" not in err
    assert not (out / "report.json").exists()
    monkeypatch.setenv("RANK", "0")
    rc, stdout, _ = run_cli(argv, capsys)
    assert rc == 0
    short = json.loads(stdout)  # the figures; report.json has everything
    check_merged(out, json.loads((out / "report.json").read_text()))
    assert short["frames"] == 7 and "confusion_matrix" not in short
    # A second run must not silently mix with the first.
    monkeypatch.setenv("RANK", "1")
    rc, _, err = run_cli(argv, capsys)
    assert rc == 1 and "--overwrite" in err


def _rank0_then_rank1(bag_folder: Path, out: Path, engine, engine1=None,
                      overwrite: bool = False) -> dict:
    """Start rank 0 in a thread; check it still waits after its own share; run rank 1."""
    template = SegmentOptions(bag_folder, out, gt_topic=GT, overwrite=overwrite)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(merged=run_folder(
        bag_folder, template, lambda: engine, RankInfo(0, 2), poll_s=0.02)))
    thread.start()
    deadline = time.monotonic() + 60
    while not (out / RANKS_DIR / "rank-0.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert thread.is_alive(), "rank 0 merged before this run's rank 1 finished"
    run_folder(bag_folder, template, lambda: engine1 or engine, RankInfo(1, 2))
    thread.join(60)
    return result["merged"]


def test_rank0_waits_for_the_other_rank(bag_folder, tmp_path):
    engine = shared_engine()
    check_merged(tmp_path / "out", _rank0_then_rank1(bag_folder, tmp_path / "out", engine))


def test_rank0_ignores_a_crashed_runs_done_file(bag_folder, tmp_path, monkeypatch):
    engine = shared_engine()
    out = tmp_path / "out"
    stale = out / RANKS_DIR / "rank-1.json"  # a crashed earlier run's, started without an id
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"run_id": "", "world_size": 2, "bags": []}))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("CANET_RUN_ID", "this-run")
    check_merged(out, _rank0_then_rank1(bag_folder, out, engine))


def test_bag_discovery_and_names(tmp_path):
    camera_bag(tmp_path / "x", n=1, topic=CAM)
    camera_bag(tmp_path / "x.bag", n=1, fmt="ros1", topic=CAM)
    bags = find_bags(tmp_path)
    assert [p.name for p in bags] == ["x", "x.bag"]
    assert sorted(output_names(bags).values()) == ["x_bag", "x_dir"]


def test_output_names_never_collide(tmp_path):
    # cam.mcap's "cam_mcap" is also cam_mcap.db3's own stem: one folder would hold both.
    for name in ("cam.mcap", "cam.db3", "cam_mcap.db3"):
        (tmp_path / name).write_bytes(b"")
    names = output_names(sorted(tmp_path.iterdir()))
    assert names == {tmp_path / "cam.db3": "cam_db3", tmp_path / "cam.mcap": "cam_mcap",
                     tmp_path / "cam_mcap.db3": "cam_mcap_2"}


class _StoppedAtFirstFrame:
    """The engine, but Ctrl-C arrives with the first frame (a rank stopped by hand)."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, *args, **kwargs):
        raise KeyboardInterrupt


def test_an_overwrite_rerun_stopped_in_a_bag_merges_only_this_runs_frames(tmp_path):
    # Rank 1's bag keeps the earlier run's output (and its report.json): not this run's.
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "a", n=3, topic=CAM, gt_topic=GT)  # rank 0
    camera_bag(folder / "c", n=2, topic=CAM, gt_topic=GT)  # rank 1
    engine, out = shared_engine(), tmp_path / "out"
    assert _rank0_then_rank1(folder, out, engine)["frames"] == 5
    merged = _rank0_then_rank1(folder, out, engine, _StoppedAtFirstFrame(engine),
                               overwrite=True)
    assert merged["frames"] == 3 and [b["status"] for b in merged["bags"]] == [
        "ok", "interrupted"]
    assert json.loads((out / "c" / "report.json").read_text())["frames"] == 2  # kept


def test_one_process_folder_with_a_broken_bag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "good", n=2, topic=CAM)
    (folder / "broken.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 50)
    ckpt = make_checkpoint(tmp_path)
    rc, stdout, err = run_cli([str(folder), "--out", str(tmp_path / "out"), "--checkpoint",
                               str(ckpt), "--json"], capsys)
    merged = json.loads(stdout)
    assert rc == 1 and "broken.mcap" in err and "Traceback" not in err
    assert merged["frames"] == 2 and merged["world_size"] == 1
    assert [Path(b["bag"]).name for b in merged["failed"]] == ["broken.mcap"]
    assert (tmp_path / "out" / "good" / "report.json").is_file()
    rc, _, err = run_cli([str(folder), "--out", str(tmp_path / "out"), "--checkpoint",
                          str(ckpt)], capsys)
    assert rc == 1 and "exists; pass --overwrite" in err


@pytest.mark.parametrize("bad, message", [
    ({"gt_dir": Path("no_such_dir")}, "ground-truth folder does not exist"),
    ({"topic": "/g", "gt_topic": "/g"}, "name the same topic"),
])
def test_folder_arguments_are_checked_before_the_model_or_outdir(
        bag_folder, tmp_path, bad, message):
    loads = []
    template = SegmentOptions(bag_folder, tmp_path / "out", **{
        k: tmp_path / v if k == "gt_dir" else v for k, v in bad.items()})
    with pytest.raises(BagError, match=message):
        run_folder(bag_folder, template, lambda: loads.append(1), RankInfo(0, 1))
    assert loads == [] and not (tmp_path / "out").exists()


def test_the_merged_report_counts_unusable_ground_truth(tmp_path):
    folder = tmp_path / "bags"
    folder.mkdir()
    camera_bag(folder / "a", n=2, topic=CAM, gt_topic=GT)
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(3)]
    msgs += [Msg(GT, receive_ns(i, 7), raw_image(HUMBLE, i) if i == 1 else
                 label_image(HUMBLE, i)) for i in range(3)]  # frame 1's is in colour
    write_bag(folder / "b", msgs)
    engine = shared_engine()
    merged = run_folder(folder, SegmentOptions(folder, tmp_path / "out", topic=CAM,
                                               gt_topic=GT), lambda: engine, RankInfo(0, 1))
    per_bag = json.loads((tmp_path / "out" / "b" / "report.json").read_text())
    unusable = per_bag["ground_truth"]["frames_gt_unusable"]
    assert sum(unusable.values()) == 1
    assert merged["ground_truth"]["frames_gt_unusable"] == unusable
    assert merged["ground_truth"]["frames_with_gt"] == 2 + 2

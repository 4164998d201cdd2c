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

"""Bad inputs, unsafe output folders and Ctrl-C.

Clear messages, non-zero exits, no tracebacks, and an output bag always closed properly.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from test_bag_helpers import (
    HUMBLE,
    Msg,
    camera_bag,
    compressed_image,
    make_checkpoint,
    make_engine,
    raw_image,
    read_bag,
    receive_ns,
    run_cli,
    write_bag,
)

from canet_ros.bag import BagError, SegmentOptions, segment_bag

CAM = "/cam/image_raw/compressed"
LABELS = "/cam/segmentation/labels"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def engine(ckpt):
    return make_engine(ckpt)


def fails(capsys, argv, *needles):
    rc, out, err = run_cli(argv, capsys)
    assert rc != 0
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in err, err
    return err


def test_bags_with_nothing_readable_are_refused(tmp_path, capsys, ckpt):
    """Damage that leaves no readable message: one clear line, exit 1, nothing written."""
    good = camera_bag(tmp_path / "rec", n=3, topic=CAM)  # one chunk: a cut in it loses all
    data = (good / "rec.mcap").read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    fails(capsys, [str(cut), "--out", str(tmp_path / "o1"), "--checkpoint", str(ckpt)],
          str(cut), "truncated", "nothing could be salvaged")
    junk = tmp_path / "junk.db3"
    junk.write_bytes(b"SQLite format 3\x00" + b"\x07" * 2000)
    fails(capsys, [str(junk), "--out", str(tmp_path / "o2")], str(junk), "cannot salvage")
    ros1 = camera_bag(tmp_path / "r.bag", n=3, fmt="ros1", topic=CAM)
    ros1.write_bytes(ros1.read_bytes()[:300])
    fails(capsys, [str(ros1), "--out", str(tmp_path / "o3")], str(ros1),
          "nothing could be salvaged")
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))


def test_unknown_storage(tmp_path, capsys):
    odd = tmp_path / "rec.xyz"
    odd.write_bytes(b"hello")
    fails(capsys, [str(odd), "--out", str(tmp_path / "o")], str(odd), "unknown storage format")
    folder = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    meta = folder / "metadata.yaml"
    meta.write_text(meta.read_text().replace("storage_identifier: mcap",
                                             "storage_identifier: foo"))
    fails(capsys, [str(folder), "--out", str(tmp_path / "o")], "unknown storage format 'foo'")
    fails(capsys, [str(tmp_path / "nope"), "--out", str(tmp_path / "o")], "no such file")


def test_missing_and_ambiguous_topics(tmp_path, capsys):
    msgs = [Msg(CAM, receive_ns(0), compressed_image(HUMBLE, 0)),
            Msg("/other/image_raw", receive_ns(0, 6), raw_image(HUMBLE, 0))]
    src = write_bag(tmp_path / "two", msgs)
    out = str(tmp_path / "o")
    fails(capsys, [str(src), "--out", out], "several image topics", CAM, "/other/image_raw")
    fails(capsys, [str(src), "--out", out, "--topic", "/nope"], "'/nope' does not exist", CAM)
    fails(capsys, [str(src), "--out", out, "--topic", CAM, "--gt-topic", "/gt"],
          "ground-truth topic '/gt' does not exist")
    fails(capsys, [str(src), "--out", out, "--gt-dir", str(tmp_path / "nogt"), "--topic", CAM],
          "ground-truth folder does not exist")


def test_undecodable_frames_are_skipped_and_reported(engine, tmp_path):
    path = tmp_path / "bad"
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection(CAM, "sensor_msgs/msg/CompressedImage", typestore=HUMBLE)
        for i in range(4):
            msg = compressed_image(HUMBLE, i, b"not a jpeg" if i == 1 else None)
            data = HUMBLE.serialize_cdr(msg, msg.__msgtype__)
            w.write(conn, receive_ns(i), b"\x00\x01\x00\x00\xff" if i == 2 else data)
    report = segment_bag(engine, SegmentOptions(path, tmp_path / "out"))
    assert report["frames"] == 2 and report["frames_in_topic"] == 4
    skipped = report["skipped"]
    assert skipped["count"] == 2 and [e["index"] for e in skipped["examples"]] == [1, 2]
    reasons = " ".join(skipped["reasons"])
    assert "cannot decode" in reasons and "neither JPEG nor PNG" in reasons
    assert "cannot deserialise" in reasons
    out = read_bag(Path(report["output_bag"]))
    assert [ts for ts, _ in out[LABELS]] == [receive_ns(0), receive_ns(3)]


def test_output_folder_rules(tmp_path, capsys, ckpt):
    src = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    fails(capsys, [str(src), "--out", str(src / "inside")], "inside")
    fails(capsys, [str(src), "--out", str(src)], "must not be the input")
    bare = src / "rec.mcap"
    fails(capsys, [str(bare), "--out", str(src), "--overwrite"], "contains the input")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    fails(capsys, [str(src), "--out", str(foreign)], "exists; pass --overwrite")
    fails(capsys, [str(src), "--out", str(foreign), "--overwrite"], "refusing to delete")
    assert (foreign / "thesis.tex").read_text() == "precious"
    out = tmp_path / "out"
    args = [str(src), "--out", str(out), "--checkpoint", str(ckpt), "--json"]
    assert run_cli(args, capsys)[0] == 0
    fails(capsys, args, "exists; pass --overwrite")
    rc, stdout, _ = run_cli([*args, "--overwrite"], capsys)
    assert rc == 0 and json.loads(stdout)["frames"] == 1


@pytest.mark.parametrize("command", ["segment-bag", "extract-frames"])
def test_an_output_folder_that_cannot_be_made_is_refused_before_the_model(
        tmp_path, capsys, command):
    from canet_ros.cli import main

    src = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    blocker = tmp_path / "afile"
    blocker.write_text("a file where a folder is asked for")
    # A checkpoint that does not exist: had the model been loaded first, that would be
    # the error.
    assert main([command, str(src), "--out", str(blocker / "sub"), "--checkpoint",
                 str(tmp_path / "missing.pt"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == (f"canet {command}: error: {blocker / 'sub'}: cannot create output folder "
                   f"({blocker} is not a folder)\n")


def test_missing_checkpoint_is_a_clean_error(tmp_path, capsys):
    src = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    fails(capsys, [str(src), "--out", str(tmp_path / "o"), "--checkpoint",
                   str(tmp_path / "none.pt")], "none.pt")


def _interrupt_on(engine, k: int, monkeypatch) -> None:
    """Ctrl-C arrives while the engine works on frame k (0-based)."""
    real = engine.infer
    calls = {"n": 0}

    def infer(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > k:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "infer", infer)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_interrupted_run_leaves_a_valid_partial_bag(engine, tmp_path, monkeypatch, storage):
    src = camera_bag(tmp_path / "rec", n=6, topic=CAM)
    _interrupt_on(engine, 3, monkeypatch)
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out", storage=storage))
    assert report["interrupted"] and not report["complete"] and report["frames"] == 3
    assert report["last_timestamp"] == receive_ns(2)
    out = read_bag(Path(report["output_bag"]))
    assert [ts for ts, _ in out[LABELS]] == [receive_ns(i) for i in range(3)]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["interrupted"] is True


def test_interrupted_cli_exits_130(tmp_path, capsys, monkeypatch, ckpt, engine):
    from canet_ros.cli import segment_bag as cli

    src = camera_bag(tmp_path / "rec", n=4, topic=CAM)
    _interrupt_on(engine, 2, monkeypatch)
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    rc, out, err = run_cli([str(src), "--out", str(tmp_path / "o"), "--checkpoint", str(ckpt),
                            "--json"], capsys)
    assert rc == 130 and "interrupted after 2 frames" in err and "Traceback" not in err
    assert json.loads(out)["interrupted"] is True


def test_gt_topic_and_dir_together_refused(tmp_path, engine):
    src = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    with pytest.raises(BagError, match="not both"):
        segment_bag(engine, SegmentOptions(src, tmp_path / "o", gt_topic="/g", gt_dir=tmp_path))


def test_read_failure_mid_bag_keeps_what_was_written(tmp_path, capsys, monkeypatch, engine):
    from canet_ros.bag.reader import InputBag
    from canet_ros.cli import segment_bag as cli

    src = camera_bag(tmp_path / "rec", n=5, topic=CAM)
    real = InputBag.messages

    def damaged(self, topic):
        for i, item in enumerate(real(self, topic)):
            if i == 2:
                raise ValueError("chunk CRC mismatch")
            yield item

    monkeypatch.setattr(InputBag, "messages", damaged)
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    rc, out, err = run_cli([str(src), "--out", str(tmp_path / "o"), "--json"], capsys)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 1 and "Traceback" not in err and json.loads(out)["frames"] == 2
    assert "corrupt or truncated bag" in err and "chunk CRC mismatch" in err and str(src) in err
    assert report["frames"] == 2 and not report["complete"]
    assert len(read_bag(Path(report["output_bag"]))[LABELS]) == 2


class _NoMcap:
    """A meta path finder for an environment without the mcap package."""

    def find_spec(self, name, path=None, target=None):
        if name == "mcap" or name.startswith("mcap."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_an_output_bag_without_mcap_says_how_to_install_it(engine, tmp_path, monkeypatch):
    """Name the install: mcap is declared, but README's colcon route installs it by hand."""
    src = camera_bag(tmp_path / "in", n=1, fmt="sqlite3", kind="rgb8", topic="/cam/image_raw")
    for name in [n for n in sys.modules if n == "mcap" or n.startswith("mcap.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoMcap(), *sys.meta_path])
    report = segment_bag(engine, SegmentOptions(src, tmp_path / "out"))
    assert report["frames"] == 0 and not report["complete"]
    assert report["error"].endswith("cannot create output bag (the package mcap, which "
                                    "canet_ros needs, is not installed: pip install mcap)")

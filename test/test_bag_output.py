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

"""What segment-bag writes, read back.

Compressed MCAP read back by rosbags and by Foxglove's ``mcap``, metadata.yaml in the
version ROS 2 Humble reads, the overlay video, the IoU chart.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_bag_helpers import (
    BASE_NS,
    HUMBLE,
    Msg,
    camera_bag,
    compressed_image,
    label_image,
    read_bag,
    receive_ns,
    run_cli,
    shared_engine,
    write_bag,
)

from canet_ros.bag import BagError, SegmentOptions, segment_bag

CAM = "/cam/image_raw/compressed"
OUT_TOPICS = ("/cam/segmentation/labels", "/cam/segmentation/color",
              "/cam/segmentation/overlay")
LABEL_INFO = "/cam/segmentation/label_info"  # once per bag (test_bag_label_info.py)


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return camera_bag(tmp_path_factory.mktemp("in") / "rec", n=4, topic=CAM)


# What ROS 2 Humble's rosbag2 reads from metadata.yaml, from its decoder
# (ros2/rosbag2, humble branch, rosbag2_storage/src/rosbag2_storage/metadata_io.cpp): every
# key below is read with yaml-cpp's as<T>() and a missing one or a wrong type is "bad
# conversion"; offered_qos_profiles is read as a string from version 4 on, the compression
# keys from version 3, "files" from version 5. These are also all the keys Humble writes.
# Jazzy's decoder (yaml.hpp, jazzy branch) reads the same keys at version 5 and reads
# custom_data, type_description_hash and ros_distro only from versions 6, 7 and 8.
U64, STR = "uint64", "string"
TIME = {"nanoseconds_since_epoch": U64}
DURATION = {"nanoseconds": U64}
HUMBLE_SCHEMA = {
    "version": "int", "storage_identifier": STR, "duration": DURATION,
    "starting_time": TIME, "message_count": U64,
    "topics_with_message_count": [{"topic_metadata": {"name": STR, "type": STR,
                                                      "serialization_format": STR,
                                                      "offered_qos_profiles": STR},
                                   "message_count": U64}],
    "compression_format": STR, "compression_mode": STR, "relative_file_paths": [STR],
    "files": [{"path": STR, "starting_time": TIME, "duration": DURATION,
               "message_count": U64}],
}


def conforms(value, schema, where="") -> list[str]:
    """Differences between ``value`` and ``schema``: exact key sets and scalar types."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where}: not a mapping"]
        if set(value) != set(schema):
            return [f"{where}: keys {sorted(set(value) ^ set(schema))} differ"]
        return [e for k in schema for e in conforms(value[k], schema[k], f"{where}.{k}")]
    if isinstance(schema, list):
        if not isinstance(value, list) or not value:
            return [f"{where}: not a non-empty sequence"]
        return [e for i, v in enumerate(value) for e in conforms(v, schema[0], f"{where}[{i}]")]
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "uint64": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
          "string": isinstance(value, str)}[schema]
    return [] if ok else [f"{where}: {value!r} is not {schema}"]


def test_schema_check_can_fail():
    good = {"a": 1, "b": [{"c": "x"}]}
    schema = {"a": U64, "b": [{"c": STR}]}
    assert conforms(good, schema) == []
    assert conforms({"a": -1, "b": [{"c": "x"}]}, schema)  # negative count
    assert conforms({"a": 1, "b": [{"c": []}]}, schema)  # a QoS list where a string is read
    assert conforms({"a": 1, "b": [{"c": "x"}], "custom_data": None}, schema)  # extra key


def check_humble_metadata(bag: Path, counts: dict[str, int], storage: str) -> dict:
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert conforms(info, HUMBLE_SCHEMA) == []
    assert info["version"] == 5 and info["storage_identifier"] == storage
    topics = {t["topic_metadata"]["name"]: t["message_count"]
              for t in info["topics_with_message_count"]}
    assert topics == counts and info["message_count"] == sum(counts.values())
    assert [f["path"] for f in info["files"]] == info["relative_file_paths"]
    assert all((bag / name).is_file() for name in info["relative_file_paths"])
    assert info["files"][0]["message_count"] == info["message_count"]
    return info


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd", None])
def test_mcap_output_reads_back_with_both_readers(engine, source, tmp_path, compression):
    import mcap.reader as mcap_reader
    from mcap.records import Chunk
    from mcap.stream_reader import StreamReader

    report = segment_bag(engine, SegmentOptions(source, tmp_path / "out",
                                                compression=compression))
    bag = Path(report["output_bag"])
    assert report["compression"] == (compression or "zstd")
    ours = read_bag(bag)  # rosbags
    storage = next(bag.glob("*.mcap"))
    with storage.open("rb") as fh:
        theirs: dict[str, list] = {}
        for schema, channel, message in mcap_reader.make_reader(fh).iter_messages():
            if channel.topic == LABEL_INFO:  # vision_msgs: no Humble core type
                theirs.setdefault(channel.topic, []).append((message.log_time, None))
                continue
            msg = HUMBLE.deserialize_cdr(message.data, schema.name)
            theirs.setdefault(channel.topic, []).append((message.log_time, msg))
    assert set(ours) == set(theirs) == {*OUT_TOPICS, LABEL_INFO}
    for topic in OUT_TOPICS:
        assert [t for t, _ in ours[topic]] == [t for t, _ in theirs[topic]] == [
            receive_ns(i) for i in range(4)]
        for (_, a), (_, b) in zip(ours[topic], theirs[topic], strict=True):
            assert np.array_equal(a.data, b.data) and a.encoding == b.encoding
    with storage.open("rb") as fh:
        chunks = [r for r in StreamReader(fh, emit_chunks=True).records if isinstance(r, Chunk)]
    assert chunks and {c.compression for c in chunks} == {"" if compression == "none"
                                                          else compression or "zstd"}
    assert all(c.uncompressed_crc != 0 for c in chunks)  # damage stays detectable
    on_disk = sum(p.stat().st_size for p in bag.iterdir())
    assert report["output_size_bytes"] == on_disk
    check_humble_metadata(bag, {**dict.fromkeys(OUT_TOPICS, 4), LABEL_INFO: 1}, "mcap")


def test_compression_shrinks_the_bag(engine, source, tmp_path):
    sizes = {c: segment_bag(engine, SegmentOptions(source, tmp_path / c, compression=c))
             ["output_size_bytes"] for c in ("none", "lz4", "zstd")}
    assert sizes["zstd"] < sizes["none"] and sizes["lz4"] < sizes["none"]


def test_sqlite3_output_metadata_and_refused_compression(engine, source, tmp_path):
    report = segment_bag(engine, SegmentOptions(source, tmp_path / "out", storage="sqlite3",
                                                copy_input=True))
    bag = Path(report["output_bag"])
    assert report["compression"] == "none" and len(read_bag(bag)[OUT_TOPICS[0]]) == 4
    check_humble_metadata(bag, {**dict.fromkeys(OUT_TOPICS, 4), CAM: 4, LABEL_INFO: 1},
                          "sqlite3")
    with pytest.raises(BagError, match="--compression zstd needs --storage mcap"):
        segment_bag(engine, SegmentOptions(source, tmp_path / "o2", storage="sqlite3",
                                           compression="zstd"))
    assert not (tmp_path / "o2").exists()


def test_video_is_h264_at_the_bag_rate(engine, source, tmp_path):
    av = pytest.importorskip("av", reason="PyAV is the video extra (pip install av)")
    report = segment_bag(engine, SegmentOptions(source, tmp_path / "out", video=True))
    video = report["video"]
    assert video["browser_playable"] and video["format"] == "H.264 in MP4"
    assert Path(video["path"]).name == "overlay.mp4" and video["note"] is None
    with av.open(video["path"]) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        # 4 frames 100 ms apart: the bag's 10 frames per second
        assert float(stream.average_rate) == pytest.approx(10.0, rel=1e-3)
        assert sum(1 for _ in container.decode(video=0)) == 4
    assert "[overlay.mp4](overlay.mp4)" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("frames", [3, 12])  # fewer and more than the frames held back
def test_video_rate_is_the_cameras_not_the_bags(engine, tmp_path, frames):
    """Another topic running 10 s longer must not slow the video (it did: 0.3 fps)."""
    av = pytest.importorskip("av", reason="PyAV is the video extra (pip install av)")
    msgs = [Msg(CAM, receive_ns(i), compressed_image(HUMBLE, i)) for i in range(frames)]
    msgs += [Msg("/other", BASE_NS + j * 5_000_000_000, label_image(HUMBLE, 0))
             for j in range(3)]
    bag = write_bag(tmp_path / "rec", msgs)
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", topic=CAM, video=True))
    assert report["video"]["fps"] == pytest.approx(10.0, rel=1e-3)  # frames 100 ms apart
    assert report["video"]["frames"] == frames and report["video"]["error"] is None
    with av.open(report["video"]["path"]) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(10.0, rel=1e-3)
        assert sum(1 for _ in container.decode(video=0)) == frames


def test_video_without_pyav_falls_back_and_says_so(engine, source, tmp_path, capsys,
                                                   monkeypatch):
    import cv2

    from canet_ros.cli import segment_bag as cli

    monkeypatch.setitem(sys.modules, "av", None)  # "import av" raises ImportError
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    rc, _, err = run_cli([str(source), "--out", str(tmp_path / "out"), "--video",
                          "--no-progress"], capsys)
    assert rc == 0, err
    assert "PyAV is not installed" in err and "browsers do not" in err
    path = tmp_path / "out" / "overlay.mp4"
    capture = cv2.VideoCapture(str(path))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert "browsers do not" in (tmp_path / "out" / "report.md").read_text()


def test_iou_labels_never_run_into_bar_ends():
    from canet_ros.visualize import iou_bar_figure

    values = {"a": 1.0, "b": 0.999, "c": 0.97, "d": 0.93, "e": 0.5, "f": 0.004, "g": 0.0}
    fig = iou_bar_figure(values, "chart")
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    legend_box = ax.get_legend().get_window_extent(renderer)
    labels = {t.get_text(): t for t in ax.texts}
    assert len(labels) == len(values)
    for bar, value in zip(ax.patches, values.values(), strict=True):
        box = bar.get_window_extent(renderer)
        label = labels[f"{100 * value:.1f}"]
        text = label.get_window_extent(renderer)
        inside = box.x0 <= text.x0 and text.x1 <= box.x1 - 1
        outside = text.x0 >= box.x1 + 1 and text.x1 <= axes_box.x1
        assert inside or outside, (value, text, box)
        assert not text.overlaps(legend_box)
        assert label.get_color() == ("white" if inside else "black")

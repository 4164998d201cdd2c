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

"""Damaged and cut-off MCAP bags built from the CamVid sample: what segment-bag salvages.

Each case damages a copy of real data (the sample's CamVid frames and labels, rewritten
with small chunks and chunk CRCs) and checks the frames recovered against what Foxglove's
``mcap`` library, reading chunk by chunk, can still decode; the output bag is read back
with rosbags and with ``mcap``; the scores are recomputed here from the labels by stamp.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import mcap.reader as mcap_reader
import numpy as np
import pytest
from mcap.records import Channel, Chunk, Message
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap.writer import CompressionType, Writer
from test_bag_helpers import (
    HUMBLE,
    hand_iou,
    image_array,
    read_bag,
    run_cli,
    shared_engine,
)

from canet_ros.bag import (
    SAMPLE_BAG,
    SAMPLE_GT_TOPIC,
    SAMPLE_IMAGE_TOPIC,
    BagError,
    SegmentOptions,
    segment_bag,
)
from canet_ros.classes import CAMVID

LABELS = "/camera/segmentation/labels"
TYPES = {SAMPLE_IMAGE_TOPIC: "sensor_msgs/msg/CompressedImage",
         SAMPLE_GT_TOPIC: "sensor_msgs/msg/Image"}


@pytest.fixture(scope="module")
def engine():
    return shared_engine((96, 72))


def rewrite_sample(path: Path, chunked: bool = True) -> Path:
    """Return the sample's messages in a new MCAP: a chunk per ~100 kB, CRCs on (or no chunks)."""
    with (SAMPLE_BAG / "camvid_sample.mcap").open("rb") as src, path.open("wb") as out:
        reader = mcap_reader.make_reader(src)
        summary = reader.get_summary()
        writer = Writer(out, chunk_size=100_000, compression=CompressionType.ZSTD,
                        use_chunking=chunked)
        writer.start(profile="ros2", library="test")
        schemas = {s.id: writer.register_schema(s.name, s.encoding, s.data)
                   for s in summary.schemas.values()}
        channels = {c.id: writer.register_channel(c.topic, c.message_encoding,
                                                  schemas[c.schema_id], c.metadata)
                    for c in summary.channels.values()}
        for _, channel, message in reader.iter_messages(log_time_order=True):
            writer.add_message(channels[channel.id], message.log_time, message.data,
                               message.publish_time)
        writer.finish()
    return path


def records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, opcode, length) of the top-level records, by the MCAP record framing."""
    out, at = [], 8
    while at + 9 <= len(data):
        op, length = int(data[at]), int.from_bytes(data[at + 1: at + 9], "little")
        out.append((at, op, length))
        if op == 0x02:  # footer
            break
        at += 9 + length
    return out


def foxglove_decodable(path: Path, topic: str) -> dict[int, object]:
    """Header stamp -> message for every ``topic`` message ``mcap`` can still decode.

    Channels are gathered from every readable record first (data section and summary);
    then each chunk is broken up with CRC validation, a failing chunk skipped, and reading
    stops where the file is cut. A message counts if it deserialises and, for images,
    its picture decodes.
    """
    def readable() -> list:
        found = []
        with path.open("rb") as fh:
            try:
                for record in StreamReader(fh, emit_chunks=True).records:
                    if isinstance(record, Chunk):
                        try:
                            found += breakup_chunk(record, validate_crc=True)
                        except Exception:  # zstd or CRC: the chunk is lost
                            continue
                    else:
                        found.append(record)
            except Exception:  # the file ends here
                pass
        return found

    found = readable()
    channels = {r.id: r.topic for r in found if isinstance(r, Channel)}
    out = {}
    for record in found:
        if isinstance(record, Message) and channels.get(record.channel_id) == topic:
            try:
                msg = HUMBLE.deserialize_cdr(record.data, TYPES[topic])
            except Exception:
                continue
            if hasattr(msg, "format") and cv2.imdecode(msg.data, cv2.IMREAD_COLOR) is None:
                continue
            out[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = msg
    return out


def mcap_count(bag: Path, topic: str) -> int:
    with next(bag.glob("*.mcap")).open("rb") as fh:
        reader = mcap_reader.make_reader(fh)
        return sum(1 for _ in reader.iter_messages(topics=[topic]))


def check_salvaged(engine, report: dict, source: Path, out: Path) -> None:
    """Frames, labels, scores and the per-frame missing ground truth, against ``mcap``."""
    frames = foxglove_decodable(source, SAMPLE_IMAGE_TOPIC)
    truth = foxglove_decodable(source, SAMPLE_GT_TOPIC)
    assert report["frames"] == len(frames) > 0
    # The output bag is valid for both readers, and its labels are the engine's.
    bag = read_bag(Path(report["output_bag"]))
    assert len(bag[LABELS]) == len(frames) == mcap_count(Path(report["output_bag"]), LABELS)
    stamps = sorted(frames)
    preds = {}
    for (_, msg), stamp in zip(bag[LABELS], stamps, strict=True):
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
        picture = cv2.imdecode(frames[stamp].data, cv2.IMREAD_COLOR)
        preds[stamp] = image_array(msg)
        assert np.array_equal(preds[stamp], engine.infer(picture, "bgr").labels)
    # Ground truth is paired by stamp; frames without it are listed one by one.
    scored = [s for s in stamps if s in truth]
    gt = report["ground_truth"]
    assert gt["frames_with_gt"] == len(scored)
    assert [f["stamp_ns"] for f in gt["frames_not_scored"]] == [s for s in stamps
                                                                if s not in truth]
    if scored:
        labels = [np.asarray(truth[s].data).reshape(truth[s].height, truth[s].width)
                  for s in scored]
        ious, miou, acc = hand_iou([preds[s] for s in scored], labels, 11, 11)
        assert report["miou"] == pytest.approx(miou, abs=1e-9)
        assert report["per_class"] == pytest.approx({CAMVID.names[c]: v
                                                     for c, v in ious.items()})
    assert json.loads((out / "report.json").read_text()) == report
    assert "Damaged input" in (out / "report.md").read_text()


def cut_at(fraction_of: Callable[[bytes], int]) -> Callable[[bytes], bytes]:
    return lambda data: data[: fraction_of(data)]


def _chunks(data: bytes) -> list[tuple[int, int, int]]:
    return [r for r in records(data) if r[1] == 0x06]


def mid_chunk(k: int) -> Callable[[bytes], bytes]:
    return cut_at(lambda d: _chunks(d)[k][0] + 9 + _chunks(d)[k][2] // 2)


def in_summary(data: bytes) -> bytes:
    end = next(r for r in records(data) if r[1] == 0x0F)  # data end: the summary follows
    return data[: end[0] + 9 + end[2] + 40]


def flip_chunk(k: int) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        at, _, length = _chunks(data)[k]
        middle = at + 9 + length // 2
        out = bytearray(data)
        out[middle: middle + 16] = bytes(b ^ 0xFF for b in out[middle: middle + 16])
        return bytes(out)
    return damage


CASES = {"mid_chunk_2": mid_chunk(2), "mid_chunk_6": mid_chunk(6), "in_summary": in_summary,
         "flipped_chunk_3": flip_chunk(3)}


@pytest.mark.parametrize("name,damage", list(CASES.items()), ids=list(CASES))
def test_damaged_chunked_mcap(engine, tmp_path, name, damage):
    intact = rewrite_sample(tmp_path / "intact.mcap").read_bytes()
    assert len(_chunks(intact)) >= 8  # one chunk per frame or so: damage costs frames, not all
    source = tmp_path / f"{name}.mcap"
    source.write_bytes(damage(intact))
    report = segment_bag(engine, SegmentOptions(source, tmp_path / "out",
                                                gt_topic=SAMPLE_GT_TOPIC))
    check_salvaged(engine, report, source, tmp_path / "out")
    lost = report["damage"]["topic_messages_lost"][SAMPLE_IMAGE_TOPIC]
    if name == "in_summary":
        assert report["frames"] == 8 and lost == 0 and report["complete"]
    elif name.startswith("flipped"):
        # The message index after the bad chunk says exactly what it held.
        assert lost == 8 - report["frames"] == 1 and not report["complete"]
        region = report["damage"]["regions"][0]
        assert "fails its CRC check" in region["reason"] or "cannot be read" in region["reason"]
        assert region["topics"] == {SAMPLE_IMAGE_TOPIC: 1, SAMPLE_GT_TOPIC: 1}
    else:
        region = report["damage"]["regions"][-1]
        assert "ends inside a chunk" in region["reason"] and region["start_ns"] is not None


def test_cut_inside_a_message_of_an_unchunked_mcap(engine, tmp_path):
    intact = rewrite_sample(tmp_path / "plain.mcap", chunked=False).read_bytes()
    messages = [r for r in records(intact) if r[1] == 0x05]
    assert len(messages) == 16  # image, labels, image, labels, ...
    at, _, length = messages[9]  # frame 4's labels: the image before it survives
    source = tmp_path / "cut.mcap"
    source.write_bytes(intact[: at + 9 + length // 2])
    report = segment_bag(engine, SegmentOptions(source, tmp_path / "out",
                                                gt_topic=SAMPLE_GT_TOPIC))
    check_salvaged(engine, report, source, tmp_path / "out")
    assert report["frames"] == 5 and report["ground_truth"]["frames_with_gt"] == 4
    lost = report["damage"]["topic_messages_lost"]
    assert lost == {SAMPLE_IMAGE_TOPIC: 0, SAMPLE_GT_TOPIC: 1}


@pytest.mark.parametrize("metadata", ["missing", "garbled"])
def test_bag_folder_without_usable_metadata_yaml(engine, tmp_path, capsys, monkeypatch,
                                                 metadata):
    from canet_ros.cli import segment_bag as cli

    folder = tmp_path / "rec"
    folder.mkdir()
    source = rewrite_sample(folder / "rec.mcap")
    if metadata == "garbled":
        (folder / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    out = tmp_path / "out"
    rc, stdout, err = run_cli([str(folder), "--out", str(out), "--gt-topic", SAMPLE_GT_TOPIC,
                               "--json", "--no-progress"], capsys)
    assert rc == 0, err
    cause = ("metadata.yaml is missing" if metadata == "missing" else
             "metadata.yaml: not a rosbag2 metadata file")
    assert "warning" in err and cause in err
    report = json.loads((out / "report.json").read_text())
    check_salvaged(engine, report, source, out)
    assert report["frames"] == 8 and cause in report["damage"]["cause"]
    assert report["damage"]["regions"] == [] and report["complete"]
    assert Path(report["output_bag"]).name == "rec_segmented"  # one bag, not a bag folder
    assert json.loads(stdout)["frames"] == 8
    rc, _, err = run_cli([str(folder), "--out", str(tmp_path / "o2"), "--no-salvage"], capsys)
    assert rc == 1 and cause in err and "without --no-salvage" in err


def test_salvage_is_the_default_and_says_so(engine, tmp_path, capsys, monkeypatch):
    from canet_ros.cli import segment_bag as cli

    source = tmp_path / "flipped.mcap"
    source.write_bytes(flip_chunk(3)(rewrite_sample(tmp_path / "intact.mcap").read_bytes()))
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    rc, out, err = run_cli([str(source), "--out", str(tmp_path / "o"), "--topic",
                            SAMPLE_IMAGE_TOPIC, "--no-progress"], capsys)
    assert rc == 0, err
    assert f"warning: {source.resolve()}: damaged bag" in err and "1 on " in err
    assert "frames: 7 written, 0 skipped, 1 lost" in out
    region = next(line for line in out.splitlines() if "messages lost" in line)
    assert "2 messages lost" in region and "receive times" in region and "CRC" in region


def test_no_salvage_refuses_with_a_hint(tmp_path, capsys):
    intact = rewrite_sample(tmp_path / "intact.mcap").read_bytes()
    source = tmp_path / "cut.mcap"
    source.write_bytes(mid_chunk(3)(intact))
    rc, out, err = run_cli([str(source), "--out", str(tmp_path / "o"), "--no-salvage"],
                           capsys)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert str(source) in err and "without --no-salvage" in err
    assert not (tmp_path / "o").exists()


def test_no_salvage_read_failure_is_one_line(engine, tmp_path, capsys, monkeypatch):
    """A chunk failing its CRC behind an intact index: rosbags opens the bag, fails later.

    extract-frames showed rosbags' traceback; now both commands say it in one line.
    segment-bag keeps its words and the frames read before the bad chunk.
    """
    from canet_ros.cli import main
    from canet_ros.cli import segment_bag as cli

    intact = rewrite_sample(tmp_path / "intact.mcap")
    source = tmp_path / "flipped.mcap"
    source.write_bytes(flip_chunk(3)(intact.read_bytes()))
    readable = set(foxglove_decodable(source, SAMPLE_IMAGE_TOPIC))
    before = next(i for i, s in enumerate(sorted(foxglove_decodable(intact, SAMPLE_IMAGE_TOPIC)))
                  if s not in readable)  # images read before the damaged chunk
    assert 0 < before < 8
    rc = main(["extract-frames", str(source), "--out", str(tmp_path / "ef"), "--topic",
               SAMPLE_IMAGE_TOPIC, "--no-salvage", "--no-prelabels", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"canet extract-frames: error: {source}: corrupt or truncated bag, "
                          f"reading failed after {before} messages on {SAMPLE_IMAGE_TOPIC} "
                          f"(Chunk checksum mismatch.); run without --no-salvage")
    assert not (tmp_path / "ef").exists()
    monkeypatch.setattr(cli, "_engine_factory", lambda args: lambda: engine)
    rc, _, err = run_cli([str(source), "--out", str(tmp_path / "sb"), "--topic",
                          SAMPLE_IMAGE_TOPIC, "--no-salvage", "--no-progress"], capsys)
    message = (f"{source}: corrupt or truncated bag, reading failed after {before} messages "
               f"(Chunk checksum mismatch.)")
    assert rc == 1 and message in err and "Traceback" not in err
    report = json.loads((tmp_path / "sb" / "report.json").read_text())
    assert report["error"] == message and report["frames"] == before


def test_nothing_readable_is_an_error(tmp_path, engine):
    intact = rewrite_sample(tmp_path / "intact.mcap").read_bytes()
    source = tmp_path / "head.mcap"
    source.write_bytes(intact[: _chunks(intact)[0][0] + 30])
    with pytest.raises(BagError, match="nothing could be salvaged"):
        segment_bag(engine, SegmentOptions(source, tmp_path / "o"))


def test_index_named_ground_truth_keeps_its_frames_after_a_lost_chunk(engine, tmp_path):
    """Files named by frame index pair with the frames' positions in the intact bag.

    Chunk 3 (frame 3) is lost; its message index says one image was in it, so frames 4..7
    keep their positions and 000004.png goes to frame 4, not to the fourth frame read.
    """
    intact = rewrite_sample(tmp_path / "intact.mcap")
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    truth = foxglove_decodable(intact, SAMPLE_GT_TOPIC)
    for i, stamp in enumerate(sorted(truth)):
        msg = truth[stamp]
        cv2.imwrite(str(gt_dir / f"{i:06d}.png"),
                    np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width))
    source = tmp_path / "flipped.mcap"
    source.write_bytes(flip_chunk(3)(intact.read_bytes()))
    by_index = segment_bag(engine, SegmentOptions(source, tmp_path / "a", gt_dir=gt_dir,
                                                  topic=SAMPLE_IMAGE_TOPIC))
    by_stamp = segment_bag(engine, SegmentOptions(source, tmp_path / "b",
                                                  gt_topic=SAMPLE_GT_TOPIC))
    assert by_index["frames"] == 7 and by_index["ground_truth"]["frames_with_gt"] == 7
    assert by_index["ground_truth"]["unused"] == 1  # 000003.png: its frame was lost
    assert by_index["confusion_matrix"] == by_stamp["confusion_matrix"]

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

"""canet extract-frames: which frames, their names, their pre-labels, every bag format."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import (
    HUMBLE,
    NOETIC,
    Msg,
    camera_bag,
    frame,
    header,
    make_checkpoint,
    raw_image,
    receive_ns,
    shared_engine,
    stamp,
    write_bag,
)

from canet_ros.bag import BagError
from canet_ros.bag.extract import (
    ExtractOptions,
    FramePicker,
    difference,
    extract_frames,
    thumbnail,
)
from canet_ros.classes import CAMVID
from canet_ros.cli import main
from canet_ros.data import load_classes
from canet_ros.data.cvat import PackageWriter

CAM = "/cam/image_raw"
SEC = 1_000_000_000


@pytest.fixture(scope="module")
def engine(one_torch_thread):
    return shared_engine()


def image_msg(store, i: int, rgb: np.ndarray, zero_stamp: bool = False):
    h, w = rgb.shape[:2]
    head = header(store, i)
    if zero_stamp:
        head.stamp.sec, head.stamp.nanosec = 0, 0
    return store.types["sensor_msgs/msg/Image"](
        header=head, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
        data=np.ascontiguousarray(rgb).reshape(-1))


def frames_bag(path: Path, pictures: list, fmt: str = "mcap", **kw) -> Path:
    store = NOETIC if fmt == "ros1" else HUMBLE
    msgs = [Msg(CAM, receive_ns(i), image_msg(store, i, rgb, **kw))
            for i, rgb in enumerate(pictures)]
    return write_bag(path, msgs, fmt)


def run(engine, src: Path, out: Path, **kw) -> dict:
    return extract_frames(ExtractOptions(src, out, **kw), lambda: engine)


def stem_of(i: int) -> str:
    sec, nsec = stamp(i)
    return f"{sec}_{nsec:09d}"


# -- which frames --------------------------------------------------------------------------
def picked(times_s: list, max_frames: int, min_interval: float, thumbs=None) -> list:
    times = [round(t * SEC) for t in times_s]
    picker = FramePicker(times[0], times[-1], max_frames, round(min_interval * SEC), 4.0)
    for k, t in enumerate(times):
        if picker.wants(t):
            picker.offer(t, thumbs[k] if thumbs else np.full((24, 32), 10.0 * k, np.float32))
    return [t / SEC for t, _ in picker.kept]


def test_frames_spread_over_the_recording():
    # 100 frames at 10 Hz (0 .. 9.9 s), 5 wanted: slots of 9.9 / 5 = 1.98 s start at 0,
    # 1.98, 3.96, 5.94, 7.92; the first frame in each is at 0, 2.0, 4.0, 6.0, 8.0 s.
    times = [k / 10 for k in range(100)]
    assert picked(times, 5, 0.0) == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0])
    # --min-interval 3 makes slots of 3 s: 0, 3, 6, 9 (four frames, fewer than --max).
    assert picked(times, 5, 3.0) == pytest.approx([0.0, 3.0, 6.0, 9.0])
    # Never more than --max, even with every frame distinct and far apart.
    assert len(picked(times, 100, 0.0)) == 100
    assert len(picked(times, 7, 0.0)) == 7


def test_a_duplicate_is_passed_over_for_a_later_frame_of_its_slot():
    # 40 frames at 10 Hz (0 .. 3.9 s), 2 wanted: slots of 1.95 s. Frames up to 2.3 s show
    # one picture (a stop). Slot 0 keeps 0.0. Slot 1 examines 2.0 (a repeat), then only
    # frames at least 1.95 / 8 = 0.24375 s later: 2.3 (a repeat again), then 2.6 (new).
    times = [k / 10 for k in range(40)]
    thumbs = [np.zeros((24, 32), np.float32) if k <= 23 else np.full((24, 32), k, np.float32)
              for k in range(40)]
    picker = FramePicker(0, round(3.9 * SEC), 2, 0, 4.0)
    for k, t in enumerate(times):
        if picker.wants(round(t * SEC)):
            picker.offer(round(t * SEC), thumbs[k])
    assert [t / SEC for t, _ in picker.kept] == pytest.approx([0.0, 2.6])
    assert picker.examined == 4 and picker.duplicates == 2


def test_thumbnail_difference_is_the_mean_grey_difference():
    a = np.full((48, 64, 3), 10, np.uint8)
    b = np.full((48, 64, 3), 30, np.uint8)
    assert thumbnail(a).shape == (24, 32)
    assert difference(thumbnail(a), thumbnail(b)) == pytest.approx(20.0)
    # Half the frame changed by 40 grey levels: 20 on average.
    c = a.copy()
    c[:, :32] = 50
    assert difference(thumbnail(a), thumbnail(c)) == pytest.approx(20.0)


def test_near_duplicates_skipped(engine, tmp_path):
    # Frames 0-5 show the same picture (the last with +-1 sensor noise), 6-11 distinct.
    still = frame(0)
    noisy = np.clip(still.astype(int) + np.random.default_rng(0).integers(-1, 2, still.shape),
                    0, 255).astype(np.uint8)
    pictures = [still] * 5 + [noisy] + [frame(i) for i in range(6, 12)]
    src = frames_bag(tmp_path / "in", pictures)
    report = run(engine, src, tmp_path / "out", max_frames=12, min_interval=0.0)
    assert [f["stem"] for f in report["frames"]] == [stem_of(i) for i in [0, *range(6, 12)]]
    assert report["duplicates_skipped"] == 5
    # Threshold 0 keeps them all.
    report = run(engine, src, tmp_path / "all", max_frames=12, min_interval=0.0,
                 duplicate_threshold=0.0)
    assert len(report["frames"]) == 12


# -- names, images, pre-labels -------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["mcap", "sqlite3", "ros1"])
def test_stamps_names_images_and_prelabels(engine, tmp_path, fmt):
    src = camera_bag(tmp_path / ("in.bag" if fmt == "ros1" else "in"), n=6, fmt=fmt,
                     kind="rgb8", topic=CAM)
    out = tmp_path / "out"
    # 6 frames 0.1 s apart over 0.5 s, 3 wanted: slots at 0, 0.1667, 0.3333 s keep 0, 2, 4.
    report = run(engine, src, out, max_frames=3, min_interval=0.0)
    kept = [0, 2, 4]
    assert [f["stem"] for f in report["frames"]] == [stem_of(i) for i in kept]
    assert sorted(p.stem for p in (out / "images").iterdir()) == [stem_of(i) for i in kept]
    for i in kept:
        image = cv2.imread(str(out / "images" / f"{stem_of(i)}.png"))[:, :, ::-1]
        np.testing.assert_array_equal(image, frame(i))
        expected = engine.infer(frame(i), "rgb").labels
        prelabel = cv2.imread(str(out / "prelabels" / f"{stem_of(i)}.png"), cv2.IMREAD_UNCHANGED)
        assert prelabel.dtype == np.uint8 and prelabel.ndim == 2
        np.testing.assert_array_equal(prelabel, expected)
        assert len(np.unique(expected)) > 1  # labels that vary, so pairing errors show
    assert load_classes(out / "classes.yaml") == CAMVID
    saved = json.loads((out / "extract.json").read_text())
    assert saved["topic"] == CAM and saved["messages"] == 6
    assert [f["stamp_ns"] for f in saved["frames"]] == [
        stamp(i)[0] * SEC + stamp(i)[1] for i in kept]
    assert saved["settings"]["max_frames"] == 3 and saved["model"]["backbone"] == "mobilenetv2"


def test_zero_header_stamp_names_by_receive_time(engine, tmp_path):
    src = frames_bag(tmp_path / "in", [frame(0), frame(1)], zero_stamp=True)
    report = run(engine, src, tmp_path / "out", min_interval=0.0)
    names = [f"{t // SEC}_{t % SEC:09d}" for t in (receive_ns(0), receive_ns(1))]
    assert [f["stem"] for f in report["frames"]] == names


def test_a_repeated_stamp_leaves_its_slot_to_the_next_frame(engine, tmp_path):
    # 8 frames 0.1 s apart, 4 wanted: slots of two frames each (0-1, 2-3, 4-5, 6-7). Frame 2
    # repeats frame 0's stamp (a driver glitch), so slot 2-3 must keep frame 3.
    store = HUMBLE
    msgs = [Msg(CAM, receive_ns(i), image_msg(store, i, frame(i))) for i in range(8)]
    msgs[2].msg.header.stamp = msgs[0].msg.header.stamp
    src = write_bag(tmp_path / "in", msgs)
    report = run(engine, src, tmp_path / "out", max_frames=4, min_interval=0.0,
                 duplicate_threshold=0.0)
    assert [f["position"] for f in report["frames"]] == [0, 3, 4, 6]
    assert report["repeated_stamps_skipped"] == 1


def test_damaged_bag_is_salvaged(engine, tmp_path):
    bag = camera_bag(tmp_path / "rec.bag", n=6, fmt="ros1", kind="rgb8", topic=CAM)
    data = bytearray(bag.read_bytes())
    at = data.find(b"index_pos=") + len(b"index_pos=")
    index_pos = int.from_bytes(data[at: at + 8], "little")
    data = data[:index_pos]  # a recorder killed before it wrote the index
    data[at: at + 8] = bytes(8)
    bag.write_bytes(bytes(data))
    report = run(engine, bag, tmp_path / "out", min_interval=0.0)
    assert report["damage"] is not None
    assert [f["stem"] for f in report["frames"]] == [stem_of(i) for i in range(6)]


def _ctrl_c_on_second_call(inner):
    """``inner``, interrupted by Ctrl-C at the end of its second call (its work done)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        out = inner(*args, **kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return out

    return wrapped


@pytest.mark.parametrize("where", ["model", "cvat"])
def test_ctrl_c_leaves_every_file_listing_the_same_frames(engine, tmp_path, monkeypatch,
                                                          where):
    # own_data.md: "Ctrl-C stops early and leaves a valid folder with the frames so far".
    src = camera_bag(tmp_path / "in", n=4, kind="rgb8", topic=CAM)
    if where == "model":
        monkeypatch.setattr(engine, "infer", _ctrl_c_on_second_call(engine.infer))
    else:
        monkeypatch.setattr(PackageWriter, "add", _ctrl_c_on_second_call(PackageWriter.add))
    out = tmp_path / "out"
    report = run(engine, src, out, min_interval=0.0)
    assert report["interrupted"] is True and [f["stem"] for f in report["frames"]] == [
        stem_of(0)]
    with zipfile.ZipFile(out / "cvat.zip") as zf:
        names = zf.namelist()
        listed = zf.read("ImageSets/Segmentation/default.txt").decode().split()
    for folder in ("SegmentationClass", "SegmentationObject"):
        assert sorted(n for n in names if n.startswith(folder + "/")) == [
            f"{folder}/{stem_of(0)}.png"]
    assert listed == [stem_of(0)]
    for folder in ("images", "prelabels"):
        assert [p.stem for p in (out / folder).iterdir()] == [stem_of(0)]


def test_no_prelabels_still_writes_classes(tmp_path):
    src = camera_bag(tmp_path / "in", n=2, kind="rgb8", topic=CAM)
    ckpt = make_checkpoint(tmp_path)
    report = extract_frames(ExtractOptions(src, tmp_path / "out", min_interval=0.0), None,
                            ckpt)
    assert report["prelabels"] is False and len(report["frames"]) == 2
    assert not (tmp_path / "out" / "prelabels").exists()
    assert load_classes(tmp_path / "out") == CAMVID


# -- output folder rules and the command ---------------------------------------------------
def test_output_folder_rules(engine, tmp_path):
    src = camera_bag(tmp_path / "in", n=2, kind="rgb8", topic=CAM)
    out = tmp_path / "out"
    run(engine, src, out)
    with pytest.raises(BagError, match="pass --overwrite"):
        run(engine, src, out)
    run(engine, src, out, overwrite=True)
    (out / "masks").mkdir()
    (out / "masks" / "a.png").write_bytes(b"labelled work")
    with pytest.raises(BagError, match="labelled masks"):
        run(engine, src, out, overwrite=True)
    assert (out / "masks" / "a.png").read_bytes() == b"labelled work"
    (out / "masks" / "a.png").unlink()  # an empty masks/ is still ours to replace
    (out / "export").mkdir()  # a CVAT export unpacked where docs/own_data.md suggests
    (out / "train.txt").write_text("a\n")
    with pytest.raises(BagError, match="holds export, train.txt, which extract-frames did"):
        run(engine, src, out, overwrite=True)
    assert (out / "export").is_dir() and (out / "train.txt").is_file()
    (out / "export").rmdir()
    (out / "train.txt").unlink()
    run(engine, src, out, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(BagError, match="not written by canet extract-frames"):
        run(engine, src, other, overwrite=True)
    with pytest.raises(BagError, match="does not exist"):
        run(engine, src, tmp_path / "x", topic="/nope")


def test_cli(tmp_path, capsys, one_torch_thread):
    src = camera_bag(tmp_path / "in", n=4, kind="rgb8", topic=CAM)
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "out"
    rc = main(["extract-frames", str(src), "--out", str(out), "--max", "2", "--min-interval",
               "0", "--checkpoint", str(ckpt), "--device", "cpu", "--json", "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stems"] == [stem_of(0), stem_of(2)] and summary["frames"] == 2
    assert (out / "cvat.zip").is_file()
    rc = main(["extract-frames", str(src), "--out", str(out), "--topic", CAM])
    assert rc == 1 and "pass --overwrite" in capsys.readouterr().err
    rc = main(["extract-frames", str(src), "--out", str(tmp_path / "new"), "--topic", "/nope"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("canet extract-frames: error: ") and "'/nope'" in err
    assert not (tmp_path / "new").exists()
    with pytest.raises(SystemExit) as exc:
        main(["extract-frames", str(src), "--out", str(out), "--max", "0"])
    assert exc.value.code == 2


def test_cli_with_no_usable_message_is_an_error_with_the_reason(tmp_path, capsys):
    # Every message in an encoding the codec refuses: not "frames: 0 written ... next:
    # label them", but an error saying why, as a topic with no messages gets.
    depth = []
    for i in range(3):
        msg = raw_image(HUMBLE, i)
        msg.encoding = "32FC1"
        depth.append(Msg(CAM, receive_ns(i), msg))
    src = write_bag(tmp_path / "depth", depth)
    out = tmp_path / "out"
    rc = main(["extract-frames", str(src), "--out", str(out), "--no-prelabels",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"canet extract-frames: error: {src}: none of the 3 "
                                      f"messages on {CAM} could be used (first: ")
    assert "unsupported image encoding '32FC1'" in err and err.count("\n") == 1


@pytest.mark.parametrize("value, accepted", [("255", True), ("0", True), ("255.5", False),
                                             ("300", False), ("-1", False), ("nan", False)])
def test_duplicate_threshold_is_a_grey_level_difference(tmp_path, capsys, value, accepted):
    """Two grey levels differ by 255 at most: a larger D would skip every later frame."""
    from canet_ros.cli import build_parser
    args = ["extract-frames", "in.bag", "--out", str(tmp_path), "--duplicate-threshold", value]
    if accepted:
        assert build_parser().parse_args(args).duplicate_threshold == float(value)
        return
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(args)
    assert exc.value.code == 2 and "--duplicate-threshold" in capsys.readouterr().err

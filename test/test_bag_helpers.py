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

"""Shared helpers for the segment-bag tests (no tests here).

Real bags written with rosbags, a tiny model, an independent IoU, and a CLI runner.
"""
from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

SIZE = (64, 48)  # W, H: tiny frames keep the CPU tests fast
HUMBLE = get_typestore(Stores.ROS2_HUMBLE)
NOETIC = get_typestore(Stores.ROS1_NOETIC)
BASE_NS = 1_700_000_000 * 1_000_000_000


def make_checkpoint(folder: Path, size: tuple[int, int] = SIZE) -> Path:
    """Return a seeded untrained model whose labels vary across the frame.

    Untrained logits nearly tie and the argmax is one class everywhere, which would hide
    decode, channel-order and pairing bugs; a classifier with large weights (as in
    test_engine.py) gives labels that change with the picture.
    """
    import torch

    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID
    from canet_ros.models import build_canet

    torch.manual_seed(0)
    model = build_canet("mobilenetv2", 11).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    return save_checkpoint(folder / "tiny.pt", model,
                           build_metadata("mobilenetv2", CAMVID, input_size=size))


def make_engine(checkpoint: Path) -> Any:
    from canet_ros.inference import SegmentationEngine

    return SegmentationEngine(checkpoint, device="cpu")


_SHARED: dict[tuple[int, int], Any] = {}


def shared_engine(size: tuple[int, int] = SIZE) -> Any:
    """One engine per input size for all bag test modules (building one takes seconds).

    Tests that patch it (``monkeypatch.setattr(engine, "infer", ...)``) are undone by
    monkeypatch after each test.
    """
    if size not in _SHARED:
        folder = Path(tempfile.mkdtemp(prefix="canet_bag_tests_"))
        atexit.register(shutil.rmtree, folder, True)
        _SHARED[size] = make_engine(make_checkpoint(folder, size))
    return _SHARED[size]


def frame(i: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Make a distinct RGB frame per index (gradients, so JPEG keeps it recognisable)."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    r = (x + 40 * i) % 256
    g = np.broadcast_to((y + 20 * i) % 256, (h, w))
    b = np.full((h, w), (90 * i) % 256, np.float32)
    return np.dstack([np.broadcast_to(r, (h, w)), g, b]).astype(np.uint8)


def labels_for(i: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(i)
    labels = rng.integers(0, 12, (h, w)).astype(np.uint8)  # 11 = CamVid's void
    return labels


def stamp(i: int) -> tuple[int, int]:
    ns = BASE_NS + i * 100_000_000
    return ns // 1_000_000_000, ns % 1_000_000_000


def header(store: Any, i: int, frame_id: str = "cam") -> Any:
    sec, nsec = stamp(i)
    t = store.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)
    if "seq" in store.types["std_msgs/msg/Header"].__dataclass_fields__:
        return store.types["std_msgs/msg/Header"](seq=i, stamp=t, frame_id=frame_id)
    return store.types["std_msgs/msg/Header"](stamp=t, frame_id=frame_id)


def raw_image(store: Any, i: int, encoding: str = "rgb8", pad: int = 0) -> Any:
    """Make an Image of frame(i) in rgb8 or bgr8, rows padded with ``pad`` junk bytes."""
    rgb = frame(i)
    pixels = rgb if encoding == "rgb8" else rgb[:, :, ::-1]
    h, w = pixels.shape[:2]
    rows = np.full((h, w * 3 + pad), 0xAB, np.uint8)
    rows[:, : w * 3] = pixels.reshape(h, w * 3)
    return store.types["sensor_msgs/msg/Image"](
        header=header(store, i), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * 3 + pad, data=rows.reshape(-1))


def compressed_image(store: Any, i: int, data: bytes | None = None) -> Any:
    if data is None:
        ok, enc = cv2.imencode(".jpg", frame(i)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        data = enc.tobytes()
    return store.types["sensor_msgs/msg/CompressedImage"](
        header=header(store, i), format="bgr8; jpeg compressed bgr8",
        data=np.frombuffer(data, np.uint8))


def label_image(store: Any, i: int) -> Any:
    labels = labels_for(i)
    h, w = labels.shape
    return store.types["sensor_msgs/msg/Image"](
        header=header(store, i), height=h, width=w, encoding="mono8", is_bigendian=0, step=w,
        data=labels.reshape(-1))


@dataclass
class Msg:
    topic: str
    timestamp: int
    msg: Any


def receive_ns(i: int, offset_ms: int = 5) -> int:
    return BASE_NS + i * 100_000_000 + offset_ms * 1_000_000


def write_bag(path: Path, messages: Sequence[Msg], fmt: str = "mcap") -> Path:
    """Write a ROS 2 (mcap/sqlite3) bag folder or a ROS 1 .bag of (topic, time, msg)."""
    if fmt == "ros1":
        from rosbags.rosbag1 import Writer as Writer1

        store, writer = NOETIC, Writer1(path)
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if fmt == "mcap" else StoragePlugin.SQLITE3
        store, writer = HUMBLE, Writer(path, version=8, storage_plugin=plugin)
    with writer:
        conns: dict[str, Any] = {}
        for m in sorted(messages, key=lambda m: m.timestamp):
            if m.topic not in conns:
                conns[m.topic] = writer.add_connection(m.topic, m.msg.__msgtype__,
                                                       typestore=store)
            if fmt == "ros1":
                data = store.serialize_ros1(m.msg, m.msg.__msgtype__)
            else:
                data = store.serialize_cdr(m.msg, m.msg.__msgtype__)
            writer.write(conns[m.topic], m.timestamp, data)
    return path


def camera_bag(path: Path, n: int = 4, fmt: str = "mcap", kind: str = "compressed",
               topic: str = "/cam_front/image_raw/compressed", gt_topic: str | None = None,
               gt_skip: Sequence[int] = (), pad: int = 0) -> Path:
    store = NOETIC if fmt == "ros1" else HUMBLE
    msgs = []
    for i in range(n):
        if kind == "compressed":
            msg = compressed_image(store, i)
        else:
            msg = raw_image(store, i, kind, pad)
        msgs.append(Msg(topic, receive_ns(i), msg))
        if gt_topic and i not in gt_skip:
            msgs.append(Msg(gt_topic, receive_ns(i, 7), label_image(store, i)))
    return write_bag(path, msgs, fmt)


def read_bag(path: Path) -> dict[str, list[tuple[int, Any]]]:
    """Read a bag back with rosbags' AnyReader: topic -> [(receive time, message)]."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([path], default_typestore=HUMBLE) as reader:
        for conn, ts, raw in reader.messages():
            out.setdefault(conn.topic, []).append((ts, reader.deserialize(raw, conn.msgtype)))
    return out


def image_array(msg: Any) -> np.ndarray:
    """Decode an Image's pixels here by hand (not with the code under test)."""
    channels = {"mono8": 1, "rgb8": 3, "bgr8": 3}[msg.encoding]
    data = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.step)
    return data[:, : msg.width * channels].reshape(msg.height, msg.width, channels).squeeze()


def hand_iou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], num_classes: int,
             ignore: int) -> tuple[dict[int, float], float, float]:
    """Per-class IoU, mIoU and pixel accuracy with plain loops over classes."""
    p = np.concatenate([x.ravel() for x in preds]).astype(np.int64)
    t = np.concatenate([x.ravel() for x in gts]).astype(np.int64)
    keep = (t != ignore) & (t < num_classes)
    p, t = p[keep], t[keep]
    ious = {}
    for c in range(num_classes):
        inter = np.sum((p == c) & (t == c))
        union = np.sum((p == c) | (t == c))
        if union:
            ious[c] = inter / union
    return ious, float(np.mean(list(ious.values()))), float(np.mean(p == t))


def run_cli(argv: Sequence[str], capsys: Any) -> tuple[int, str, str]:
    """``canet segment-bag ARGS`` through the subcommand module's own parser."""
    from canet_ros.cli import segment_bag

    parser = argparse.ArgumentParser(prog="canet")
    segment_bag.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["segment-bag", *argv])
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err

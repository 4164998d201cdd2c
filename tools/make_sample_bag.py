#!/usr/bin/env python3
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

"""Build canet_ros/samples/camvid_sample: a small ROS 2 MCAP bag of CamVid val frames.

Frames are JPEG sensor_msgs/CompressedImage on /camera/image_raw/compressed (as
image_transport's compressed publisher sends them); their CamVid label images are mono8
sensor_msgs/Image on /camera/segmentation/ground_truth with the same header stamp.
Stamps follow the sequence's 30 Hz frame numbers. MCAP chunks are zstd-compressed, which
keeps the label images (mostly runs of a few values) to a few kB each.

    python tools/make_sample_bag.py [--camvid-root DIR] [--frames 8] [--step 12] [--force]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from canet_ros.bag.sample import SAMPLE_BAG, SAMPLE_GT_TOPIC, SAMPLE_IMAGE_TOPIC  # noqa: E402

BASE_SEC = 1_700_000_000  # an arbitrary but realistic epoch for the stamps
CAMVID_HZ = 30.0


def default_root() -> Path:
    env = os.environ.get("CANET_CAMVID_ROOT")
    return Path(env) if env else REPO.parent / "shared" / "data" / "camvid"


def pick_frames(root: Path, count: int, step: int) -> list[tuple[Path, Path]]:
    images = sorted((root / "val").glob("*.png"))
    chosen = images[::step][:count]
    if len(chosen) < count:
        raise SystemExit(f"{root / 'val'}: need {count} frames at step {step}, found "
                         f"{len(images)} images")
    pairs = []
    for image in chosen:
        label = root / "valannot" / image.name
        if not label.is_file():
            raise SystemExit(f"{label}: missing label image")
        pairs.append((image, label))
    return pairs


def stamp_of(path: Path, first: int) -> tuple[int, int]:
    """(sec, nanosec) from the frame number in CamVid names like 0016E5_07959.png."""
    number = int(re.findall(r"(\d+)$", path.stem)[0])
    ns = int(round((number - first) / CAMVID_HZ * 1e9))
    return BASE_SEC + ns // 1_000_000_000, ns % 1_000_000_000


def write_bag(out: Path, pairs: list[tuple[Path, Path]], quality: int) -> None:
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    T = store.types
    first = int(re.findall(r"(\d+)$", pairs[0][0].stem)[0])
    writer = Writer(out, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        cam = writer.add_connection(SAMPLE_IMAGE_TOPIC, "sensor_msgs/msg/CompressedImage",
                                    typestore=store)
        gt = writer.add_connection(SAMPLE_GT_TOPIC, "sensor_msgs/msg/Image", typestore=store)
        for image_path, label_path in pairs:
            bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            labels = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
            if bgr is None or labels is None or labels.ndim != 2:
                raise SystemExit(f"{image_path} / {label_path}: cannot read a frame + labels")
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok
            sec, nsec = stamp_of(image_path, first)
            header = T["std_msgs/msg/Header"](
                stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                frame_id="camera")
            stamp = sec * 1_000_000_000 + nsec
            image = T["sensor_msgs/msg/CompressedImage"](
                header=header, format="bgr8; jpeg compressed bgr8", data=jpeg.reshape(-1))
            # Receive times a little after the stamp, labels after the image, as recorded.
            writer.write(cam, stamp + 3_000_000, store.serialize_cdr(image, image.__msgtype__))
            label = T["sensor_msgs/msg/Image"](
                header=header, height=labels.shape[0], width=labels.shape[1], encoding="mono8",
                is_bigendian=0, step=labels.shape[1], data=np.ascontiguousarray(labels).ravel())
            writer.write(gt, stamp + 4_000_000, store.serialize_cdr(label, label.__msgtype__))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camvid-root", type=Path, default=default_root())
    ap.add_argument("--out", type=Path, default=SAMPLE_BAG)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--step", type=int, default=12, help="take every STEP-th val image")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--force", action="store_true", help="replace an existing bag")
    args = ap.parse_args()
    if args.out.exists():
        if not args.force:
            raise SystemExit(f"{args.out}: exists; pass --force to rebuild it")
        shutil.rmtree(args.out)
    write_bag(args.out, pick_frames(args.camvid_root, args.frames, args.step), args.quality)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{args.out}: {args.frames} frames, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

"""A stand-alone camera for the node's system tests: publishes frames from its own process.

    python test/ros_camera.py --topic /ns/camera/image_raw --size 960x720 --rate 5 \
        --frames ../shared/data/camvid/val --count 4 --pad 64

Frames are CamVid images (or a synthetic gradient) resized to ``--size``; each message's
frame_id is ``<prefix><index>`` so a test can pair outputs with inputs. ``--pad`` adds
bytes of junk at the end of every row (step > width * 3), as some drivers do. With
``--transport compressed`` it publishes JPEGs on ``<topic>/compressed``. It waits for a
subscriber, prints ``streaming`` and then publishes ``--count`` frames (0 = until stopped).
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--size", default="480x360", help="WIDTHxHEIGHT")
    parser.add_argument("--rate", type=float, default=2.0, help="frames per second")
    parser.add_argument("--count", type=int, default=0, help="frames to publish; 0 = forever")
    parser.add_argument("--frames", default="", help="folder of PNG frames (cycled)")
    parser.add_argument("--limit", type=int, default=4, help="how many frames to read")
    parser.add_argument("--pad", type=int, default=0, help="junk bytes after every row")
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    parser.add_argument("--reliability", choices=("best_effort", "reliable"),
                        default="best_effort")
    parser.add_argument("--prefix", default="f", help="frame_id prefix")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a reader")
    return parser.parse_args(argv)


def load_frames(folder: str, limit: int, size: tuple) -> list:
    paths = sorted(Path(folder).glob("*.png"))[:limit] if folder else []
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
    if not images:
        width = size[0]
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        images = [np.broadcast_to(ramp + [0, 60, 120], (size[1], width, 3)).clip(0, 255)
                  .astype(np.uint8)]
    return [cv2.resize(img, size, interpolation=cv2.INTER_LINEAR) for img in images]


def make_messages(frames: list, args: argparse.Namespace) -> list:
    from sensor_msgs.msg import CompressedImage, Image
    messages = []
    for bgr in frames:
        if args.transport == "compressed":
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok
            messages.append(CompressedImage(format="bgr8; jpeg compressed bgr8",
                                            data=data.tobytes()))
            continue
        height, width = bgr.shape[:2]
        step = width * 3 + args.pad
        rows = np.full((height, step), 0xAB, np.uint8)  # junk where the padding is
        rows[:, :width * 3] = bgr.reshape(height, -1)
        messages.append(Image(height=height, width=width, encoding="bgr8", is_bigendian=0,
                              step=step, data=rows.tobytes()))
    return messages


def main(argv=None) -> int:
    args = parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import CompressedImage, Image

    stop = []
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.append(True))
    node = rclpy.create_node("test_camera")
    reliability = ReliabilityPolicy.RELIABLE if args.reliability == "reliable" else \
        ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
    compressed = args.transport == "compressed"
    topic = args.topic + "/compressed" if compressed else args.topic
    publisher = node.create_publisher(CompressedImage if compressed else Image, topic, qos)
    messages = make_messages(load_frames(args.frames, args.limit, size), args)
    deadline = time.monotonic() + args.wait
    while publisher.get_subscription_count() == 0 and not stop:
        if time.monotonic() > deadline:
            print(f"no subscriber on {topic} after {args.wait} s", flush=True)
            return 2
        time.sleep(0.05)
    print(f"streaming {len(messages)} distinct frames on {topic}", flush=True)
    sent, period, start = 0, 1.0 / args.rate, time.monotonic()
    while not stop and (args.count == 0 or sent < args.count):
        msg = messages[sent % len(messages)]
        msg.header.frame_id = f"{args.prefix}{sent}"
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent * period - time.monotonic()))
    print(f"published {sent}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

"""A ROS 1 topic recorded from two publishers loses a chunk: both connections' messages count.

rosbags' index (and the index data after each chunk) is per connection; a lost chunk's
count on a topic is the sum over the topic's connections, and the frames after the gap
keep the positions rosbags gives them in the intact bag.
"""
from __future__ import annotations

from rosbags.rosbag1 import Reader as Reader1
from rosbags.rosbag1 import Writer as Writer1
from test_bag_helpers import BASE_NS, NOETIC, raw_image
from test_salvage_time_order import CAM, STEP, rosbags_order, salvaged


def test_lost_chunk_of_a_topic_with_two_connections(tmp_path):
    intact = tmp_path / "two.bag"
    writer = Writer1(intact)
    writer.chunk_threshold = 20_000  # three frames a chunk
    writer.set_compression(Writer1.CompressionFormat.BZ2)
    writer.open()
    first = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=NOETIC,
                                  callerid="/a")
    second = writer.add_connection(CAM, "sensor_msgs/msg/Image", typestore=NOETIC,
                                   callerid="/b")
    for i in range(12):
        msg = raw_image(NOETIC, i)
        writer.write(first if i % 2 else second, BASE_NS + i * STEP,
                     NOETIC.serialize_ros1(msg, msg.__msgtype__))
    writer.close()
    with Reader1(intact) as reader:
        chunks = [(info.pos, sum(info.connection_counts.values()))
                  for info in reader.chunk_infos]
    expected = rosbags_order(intact)
    pos, lost = chunks[1]
    assert lost == 3 and len(chunks) == 4
    before = chunks[0][1]
    data = bytearray(intact.read_bytes())
    data[pos + 200] ^= 0xFF  # inside the bz2 stream: the chunk no longer decompresses
    damaged = tmp_path / "damaged.bag"
    damaged.write_bytes(bytes(data))
    read, bag = salvaged(damaged)
    gone = set(expected[before:before + lost])
    assert read == [(f, i) for i, f in enumerate(expected) if f not in gone]
    assert bag.damage.lost_on(CAM) == lost and bag.damage.messages_lost() == lost

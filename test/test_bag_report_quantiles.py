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

"""segment-bag report.json: ``latency_ms`` and ``infer_ms`` hold the 50th and 99th percentiles.

docs/segment_bag.md names them p50 and p99 without an interpolation rule, so the times
are chosen to make every rule agree: 101 values 0, 1, ..., 100 ms have their 50th and
99th percentiles on exact ranks, 50 ms and 99 ms (linear: 0.5 * 100 = rank 50, 0.99 * 100 =
rank 99; nearest rank: ceil(0.5 * 101) = 51st value, ceil(0.99 * 101) = 100th value).
"""
import random

import pytest

from canet_ros.bag.report import RunStats, build_report


def report_for(latency_ms, infer_ms) -> dict:
    stats = RunStats(frames_total=len(latency_ms), frames=len(latency_ms), wall_s=10.0)
    stats.latency_s = [v / 1000 for v in latency_ms]
    stats.infer_s = [v / 1000 for v in infer_ms]
    return build_report(stats, {}, {}, ["road"], None)


def test_p50_and_p99_by_hand():
    latency = list(range(101))
    random.Random(4).shuffle(latency)  # arrival order must not matter
    infer = [10 + v / 10 for v in range(101)]  # 10.0 ... 20.0 ms: p50 15.0, p99 19.9
    report = report_for(latency, infer)
    assert report["latency_ms"] == pytest.approx({"p50": 50.0, "p99": 99.0}, abs=1e-9)
    # mean of 10.0 ... 20.0 in steps of 0.1 is 15.0
    assert report["infer_ms"] == pytest.approx({"p50": 15.0, "p99": 19.9, "mean": 15.0},
                                               abs=1e-9)


def test_p99_of_a_few_slow_frames():
    # 98 frames of 10 ms and 3 of 500 ms: the 99th percentile (rank 99 of 0..100) is a slow
    # frame, the median is not; a 95th percentile would say 10 ms.
    report = report_for([10] * 98 + [500] * 3, [5] * 101)
    assert report["latency_ms"] == pytest.approx({"p50": 10.0, "p99": 500.0}, abs=1e-9)

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

"""The node's frame statistics (plain Python: no ROS needed)."""
import numpy as np
import pytest


def test_frame_stats_window_and_percentiles():
    from canet_ros.ros.stats import FrameStats, percentile
    samples = [0.5, 3.0, 1.0, 10.0, 2.0]
    for q in (0, 50, 90, 99, 100):
        assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))
    clock = iter([0.0, 2.0, 3.0]).__next__
    stats = FrameStats(clock=clock)
    for latency in (0.010, 0.020, 0.030):
        stats.count("received")
        stats.published(latency, stamp_latency_s=latency * 2)
    stats.count("dropped", 2)
    report = stats.report()
    assert (report.period_s, report.input_fps, report.output_fps) == (2.0, 1.5, 1.5)
    assert report.callback_latency_ms == pytest.approx((20.0, 29.8))
    assert all(isinstance(v, str) for _, v in report.key_values())
    empty = stats.report()
    assert empty.window["received"] == 0 and empty.totals["dropped"] == 2
    assert empty.stamp_latency_ms is None and "n/a" in empty.summary()

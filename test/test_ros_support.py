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
    assert "idle" not in empty.summary()


def test_the_summary_says_frames_went_unused_for_want_of_subscribers():
    from canet_ros.ros.stats import FrameStats
    stats = FrameStats(clock=iter([0.0, 5.0]).__next__)
    stats.count("received", 150)
    stats.count("idle", 150)
    line = stats.report().summary()
    assert line.startswith("in 30.0 fps, out 0.0 fps, dropped 0 (total 0), idle 150 "
                           "(no matched subscribers), malformed 0"), line


def _window(latencies, **kwargs):
    """Report one window in which every frame took the given callback->publish latency."""
    from canet_ros.ros.stats import FrameStats
    stats = FrameStats(clock=lambda: 0.0, **kwargs)
    for latency in latencies:
        stats.published(float(latency), stamp_latency_s=2.0 * float(latency))
    return stats


def test_percentiles_are_exact_over_a_window_of_up_to_max_samples():
    # 100 s at 30 fps: a slow start then fast frames. Percentiles of the whole window,
    # not of its last frames (which would say p99 = 10 ms).
    steps = [0.200] * 1000 + [0.010] * 2000
    assert _window(steps).report().callback_latency_ms == pytest.approx((10.0, 200.0))
    from canet_ros.ros.stats import MAX_SAMPLES
    varied = np.random.default_rng(1).lognormal(-4.0, 1.0, MAX_SAMPLES)
    report = _window(varied).report()
    expected = np.percentile(varied, [50, 99]) * 1e3
    assert report.callback_latency_ms == pytest.approx(tuple(expected), rel=1e-12)
    assert report.stamp_latency_ms == pytest.approx(tuple(2 * expected), rel=1e-12)


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_percentiles_sample_the_whole_of_a_longer_window(seed):
    # Latency climbing over the window (a node falling behind), 5x more frames than the
    # 4096 kept: a value is its own rank, so an error reads in percentile points. A
    # uniform sample of 4096 puts p50 within 2.5 and p99 within 0.5 points of the
    # window's (3 standard errors, sqrt(q (1 - q) / 4096)); its last frames say 95 / 99.9.
    ramp = np.arange(5 * 4096) / (5 * 4096)
    stats = _window(ramp, **({} if seed is None else {"seed": seed}))
    p50, p99 = stats.report().callback_latency_ms
    true50, true99 = np.percentile(ramp, [50, 99]) * 1e3
    assert abs(p50 - true50) <= 25.0 and abs(p99 - true99) <= 5.0, (p50, p99)
    # The next window starts afresh, exact again.
    for latency in (0.010, 0.020, 0.030):
        stats.published(latency)
    assert stats.report().callback_latency_ms == pytest.approx((20.0, 29.8))


def test_reservoir_is_bounded_uniform_and_reproducible():
    from canet_ros.ros.stats import Reservoir
    reservoir = Reservoir(1000, seed=7)
    for index in range(20_000):
        reservoir.add(float(index))
    sample = np.array(reservoir.values())
    assert len(sample) == 1000 and reservoir.seen == 20_000
    assert len(set(sample)) == 1000 and sample.min() >= 0 and sample.max() < 20_000
    # Each twentieth of the stream holds ~50 of the kept values (binomial sd ~6.9).
    counts = np.bincount((sample // 1000).astype(int), minlength=20)
    assert counts.min() >= 25 and counts.max() <= 75, counts
    reservoir.clear()
    for index in range(20_000):
        reservoir.add(float(index))
    np.testing.assert_array_equal(reservoir.values(), sample)
    with pytest.raises(ValueError, match="at least 1"):
        Reservoir(0)

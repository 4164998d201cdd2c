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

"""An epoch's time in log.csv is the time it took, whatever the wall clock does meanwhile.

A robot's clock is often set by NTP after boot, while training may already run: the wall
clock jumps by hours. Here it is stepped as that does (``time.time`` and ``time.time_ns``
moved by STEP seconds) and the logged times are held to the real ones, measured around
them with ``time.perf_counter``.
"""
from __future__ import annotations

import time

import pytest
from test_training import make_camvid_tree, tiny_config
from test_training_resume import log_rows

from canet_ros.training import epoch_stats
from canet_ros.training.epoch_stats import EpochStats
from canet_ros.training.trainer import Trainer

STEPS_S = (-3600.0, 3600.0)  # the wall clock set back or forward an hour


@pytest.fixture
def wall_clock(monkeypatch):
    """Return a function that steps the wall clock by its argument (seconds)."""
    real, real_ns = time.time, time.time_ns
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() + int(offset[0] * 1e9))

    def step(seconds: float) -> None:
        offset[0] += seconds

    return step


@pytest.mark.parametrize("step_s", STEPS_S)
def test_an_epochs_seconds_are_the_time_it_took_across_a_clock_step(wall_clock, step_s):
    before = time.perf_counter()
    stats = EpochStats()
    stats.add(1.0, 2, 1e-3)
    wall_clock(step_s)
    slept = time.perf_counter()
    time.sleep(0.05)
    slept = time.perf_counter() - slept
    stats.add(1.0, 2, 1e-3)
    seconds = stats.seconds
    took = time.perf_counter() - before
    assert slept <= seconds <= took
    assert slept <= stats.state_dict()["seconds"] <= time.perf_counter() - before


@pytest.mark.parametrize("step_s", STEPS_S)
def test_a_resumed_epoch_keeps_its_saved_seconds_across_a_clock_step(wall_clock, step_s):
    before = time.perf_counter()
    stats = EpochStats.from_state({"loss_sum": 3.0, "images": 4, "seconds": 12.5,
                                   "lr": 1e-3})
    wall_clock(step_s)
    time.sleep(0.02)
    # Time before the stop counts, plus what ran since the resume; not the clock's jump.
    assert 12.5 + 0.02 <= stats.seconds <= 12.5 + time.perf_counter() - before


@pytest.mark.parametrize("step_s", STEPS_S)
def test_log_rows_keep_real_times_when_the_clock_steps_mid_epoch(tmp_path, monkeypatch,
                                                                 wall_clock, step_s):
    root = make_camvid_tree(tmp_path / "camvid")  # 4 frames, batch 2: 2 steps an epoch
    calls, add = [0], EpochStats.add

    def add_then_step(self, *args):
        calls[0] += 1
        if calls[0] == 3:  # after epoch 2's first step, as NTP would land mid-epoch
            wall_clock(step_s)
        return add(self, *args)

    monkeypatch.setattr(epoch_stats.EpochStats, "add", add_then_step)
    trainer = Trainer(tiny_config(root, tmp_path / "run", steps=4, val_sets=[]))
    start = time.perf_counter()
    trainer.fit()
    took = time.perf_counter() - start
    rows = log_rows(tmp_path / "run")
    assert calls[0] == 4 and [int(r["step"]) for r in rows] == [2, 4]
    for row in rows:
        epoch_s = float(row["epoch_s"])
        assert 0 < epoch_s <= took, row
        # 4 frames in the epoch's own time, hence at least 4 / took of them a second.
        assert float(row["images_per_s"]) == pytest.approx(4 / epoch_s, rel=1e-6)

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

"""``canet benchmark``'s own clock.

Rounds that fit the budget, a machine-sized matmul, and Ctrl-C printing what was
measured so far. Tiny sizes; nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import json

import pytest

from canet_ros import benchmark
from canet_ros.benchmark import timing
from canet_ros.benchmark.frames import FramePipeline
from canet_ros.cli import benchmark as cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--backbone", "mobilenetv2", "--height", "64", "--width", "64", "--device", "cpu",
        "--no-progress"]


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["benchmark", *argv])


def test_rounds_fill_the_budget_within_bounds():
    assert timing.auto_iters(1.0, budget_s=30.0) == 30
    assert timing.auto_iters(0.7, budget_s=30.0) == 42  # int(42.86)
    assert timing.auto_iters(0.01, budget_s=30.0) == 50  # at most 50
    assert timing.auto_iters(6.0, budget_s=30.0) == 10  # at least 10


def test_matmul_is_sized_to_the_machine(monkeypatch):
    # A machine doing 10 GFLOP/s: 512 -> 0.027 s, 1024 -> 0.21 s, 2048 -> 1.7 s.
    seen = []

    def fake_ms(device_type, size, iters):
        seen.append(size)
        return 2.0 * size ** 3 / 10e9 * 1000.0

    monkeypatch.setattr(timing, "_matmul_ms", fake_ms)
    assert timing.matmul_size_for("cpu", target_s=0.25) == 2048
    assert seen == [512, 1024, 2048]
    assert timing.matmul_size_for("cpu", largest=1024, target_s=0.25) == 1024
    assert timing.matmul_gflops("cpu", 1024) == pytest.approx(10.0)


def test_defaults_are_sized_here_not_fixed():
    args = parse()
    assert args.iters is None and args.matmul_size is None


def test_the_run_says_up_front_how_long_it_will_take(capsys, monkeypatch):
    monkeypatch.setattr(benchmark, "matmul_size_for", lambda device_type: 128)
    report = benchmark.run_benchmark(height=64, width=64, device="cpu", warmup=0,
                                     progress=True)
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "about" in x and "Ctrl-C" in x)
    assert f"timing {report['iters']} rounds of 4 calls" in line
    assert 10 <= report["iters"] <= 50 and report["matmul_size"] == 128
    assert err.index("about") < err.index("reference matmul")
    assert report["interrupted"] is False


def _interrupt_run_timed(monkeypatch, on_call: int) -> None:
    real, calls = FramePipeline.run_timed, {"n": 0}

    def run_timed(self, labels_only=False):
        calls["n"] += not labels_only
        if calls["n"] == on_call and not labels_only:
            raise KeyboardInterrupt
        return real(self, labels_only)

    monkeypatch.setattr(FramePipeline, "run_timed", run_timed)


def test_ctrl_c_mid_run_prints_the_complete_rounds_as_json(capsys, monkeypatch):
    # Calls of the all-outputs pipeline: the first warm-up, the sizing round, one --warmup
    # round, then one per timed round; Ctrl-C in the 3rd timed round's last call leaves 2
    # complete rounds.
    _interrupt_run_timed(monkeypatch, on_call=6)
    args = parse(*TINY, "--iters", "4", "--warmup", "1", "--matmul-size", "64", "--json")
    assert args.func(args) == 130
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["interrupted"] is True and report["iters"] == 2
    assert report["model_ms"] > 0 and report["pipeline_all_ms"] > 0
    assert set(report["stages_ms"]) == set(benchmark.STAGES)
    assert set(report["stages_labels_ms"]) == set(benchmark.LABEL_STAGES)
    assert report["pipeline_stream_ms"] is None and report["reference_gflops"] is None
    assert "measured so far" in out.err


@pytest.mark.parametrize("warmup", [0, 2])
def test_warmup_rounds_come_after_the_sizing_round(monkeypatch, warmup):
    # --help: "untimed iterations first (after the first call and the round that sizes
    # the run)": the all-outputs pipeline runs 1 + 1 + warmup + iters times.
    real, calls = FramePipeline.run_timed, {"n": 0}

    def run_timed(self, labels_only=False):
        calls["n"] += not labels_only
        return real(self, labels_only)

    monkeypatch.setattr(FramePipeline, "run_timed", run_timed)
    monkeypatch.setattr(benchmark, "matmul_size_for", lambda device_type: 64)
    report = benchmark.run_benchmark(height=64, width=64, device="cpu", iters=3,
                                     warmup=warmup, progress=False)
    assert report["warmup"] == warmup and report["iters"] == 3
    assert calls["n"] == 1 + 1 + warmup + 3


def test_ctrl_c_before_any_round_still_reports(capsys, monkeypatch):
    _interrupt_run_timed(monkeypatch, on_call=1)
    args = parse(*TINY, "--iters", "2", "--matmul-size", "64")
    assert args.func(args) == 130
    text = capsys.readouterr().out
    assert "(0 iters)" in text and "interrupted    after 0 complete rounds" in text
    assert "model  " not in text


def test_ctrl_c_in_the_matmul_keeps_every_timing(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark, "matmul_gflops", interrupted)
    args = parse(*TINY, "--iters", "2", "--warmup", "0", "--matmul-size", "64")
    assert args.func(args) == 130
    text = capsys.readouterr().out
    assert "streamed" in text and "GFLOP/s achieved" in text and "fp32 matmul" not in text

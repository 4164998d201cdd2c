"""``canet benchmark`` on a tiny configuration: keys, types and internal consistency only.

Speeds are never asserted: this machine's cores are shared and timings are noise.
"""
import argparse
import json
import math

import pytest

from canet_ros.benchmark import run_benchmark
from canet_ros.cli import benchmark as cli

NUMBERS = ("model_ms", "model_p99_ms", "pipeline_ms", "pipeline_p99_ms", "model_fps",
           "pipeline_fps", "gmacs", "model_gflops", "reference_gflops", "peak_host_mb",
           "pipeline_stream_ms", "pipeline_over_model", "gflops_ratio", "peak_host_mb_process")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def check_report(report, runtime):
    for key in NUMBERS:
        value = report[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    assert report["model_fps"] == pytest.approx(1000.0 / report["model_ms"])
    assert report["pipeline_fps"] == pytest.approx(1000.0 / report["pipeline_ms"])
    assert report["model_gflops"] == pytest.approx(
        2 * report["gmacs"] / (report["model_ms"] / 1000.0))
    assert report["gflops_ratio"] == pytest.approx(
        report["model_gflops"] / report["reference_gflops"])
    assert report["model_p99_ms"] >= report["model_ms"]
    assert report["pipeline_p99_ms"] >= report["pipeline_ms"]
    assert report["peak_device_mb"] is None
    assert isinstance(report["device"], str) and report["device"]
    assert isinstance(report["torch"], str)
    assert (report["backbone"], report["height"], report["width"]) == ("mobilenetv2", 64, 64)
    assert (report["precision"], report["iters"], report["runtime"]) == ("fp32", 2, runtime)


def test_run_benchmark():
    report = run_benchmark(backbone="mobilenetv2", height=64, width=64, device="cpu",
                           iters=2, warmup=1, matmul_size=256, progress=False)
    check_report(report, "onnxruntime")
    assert "compare" not in report
    json.dumps(report)  # JSON-ready as it stands
    summary = cli._summary(report)
    assert "model" in summary and "pipeline" in summary and "GFLOP/s" in summary


def test_cli_json_with_compare(capsys):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["benchmark", "--backbone", "mobilenetv2", "--height", "64",
                              "--width", "64", "--device", "cpu", "--precision", "fp32",
                              "--iters", "2", "--warmup", "1", "--matmul-size", "256",
                              "--compare", "--json", "--no-progress"])
    assert args.func is cli.run
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    check_report(report, "onnxruntime")
    compare = report["compare"]
    for name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                 "onnxruntime_canet", "torch_canet"):
        assert isinstance(compare[name], float) and compare[name] > 0, name


def test_cli_reports_engine_errors(capsys):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    bad = parser.parse_args(["benchmark", "--device", "cpu", "--precision", "fp16",
                             "--no-progress"])
    assert cli.run(bad) == 2
    assert "fp16" in capsys.readouterr().err

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

"""``canet benchmark`` on a tiny configuration: keys, types and internal consistency only.

Speeds are never asserted: this machine's cores are shared and timings are noise.
"""
import argparse
import json
import math

import pytest

from canet_ros.benchmark import LABEL_STAGES, STAGES, load_frame, run_benchmark
from canet_ros.cli import benchmark as cli
from canet_ros.inference import EngineError, kernels

NUMBERS = ("model_ms", "model_p99_ms", "pipeline_ms", "pipeline_p99_ms", "model_fps",
           "pipeline_fps", "gmacs", "model_gflops", "reference_gflops", "peak_host_mb",
           "pipeline_stream_ms", "pipeline_over_model", "gflops_ratio", "peak_host_mb_process",
           "pipeline_labels_ms", "pipeline_labels_p99_ms", "pipeline_all_ms",
           "pipeline_all_p99_ms", "pipeline_labels_over_model", "pipeline_all_over_model")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def check_report(report, runtime, frame=(64, 64)):
    for key in NUMBERS:
        value = report[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    assert report["model_fps"] == pytest.approx(1000.0 / report["model_ms"])
    assert report["pipeline_fps"] == pytest.approx(1000.0 / report["pipeline_ms"])
    assert report["model_gflops"] == pytest.approx(
        2 * report["gmacs"] / (report["model_ms"] / 1000.0))
    assert report["gflops_ratio"] == pytest.approx(
        report["model_gflops"] / report["reference_gflops"])
    for name in ("pipeline", "pipeline_labels", "pipeline_all"):
        assert report[f"{name}_over_model"] == pytest.approx(
            report[f"{name}_ms"] / report["model_ms"])
        assert report[f"{name}_p99_ms"] >= report[f"{name}_ms"]
    assert report["model_p99_ms"] >= report["model_ms"]
    # Every stage of the all-outputs pipeline, medians of the same timed iterations.
    assert list(report["stages_ms"]) == list(STAGES)
    assert all(isinstance(v, float) and v >= 0 for v in report["stages_ms"].values())
    assert report["stages_ms"]["model"] > 0 and report["stages_ms"]["upsample_argmax"] > 0
    # The labels-only pipeline's own stages (CPU), from its own timed iterations.
    labels = report["stages_labels_ms"]
    assert list(labels) == list(LABEL_STAGES)
    assert labels["model"] > 0 and labels["upsample_argmax"] > 0 and labels["encode"] > 0
    assert sum(labels.values()) <= report["pipeline_labels_p99_ms"]
    assert report["peak_device_mb"] is None
    assert isinstance(report["device"], str) and report["device"]
    assert isinstance(report["torch"], str)
    assert (report["backbone"], report["height"], report["width"]) == ("mobilenetv2", 64, 64)
    assert (report["frame_width"], report["frame_height"]) == frame
    assert (report["precision"], report["iters"], report["runtime"]) == ("fp32", 2, runtime)


def test_run_benchmark():
    report = run_benchmark(backbone="mobilenetv2", height=64, width=64, device="cpu",
                           iters=2, warmup=1, matmul_size=256, progress=False)
    check_report(report, "onnxruntime")
    assert "compare" not in report and report["frame_source"].startswith("sample")
    json.dumps(report)  # JSON-ready as it stands
    summary = cli._summary(report)
    assert "model" in summary and "labels only" in summary and "GFLOP/s" in summary


def test_run_benchmark_at_a_camera_size(cpu_loops):
    report = run_benchmark(backbone="mobilenetv2", height=64, width=64, device="cpu",
                           iters=2, warmup=0, matmul_size=256, progress=False,
                           frame_size=(100, 72), image="synthetic")
    check_report(report, "onnxruntime", frame=(100, 72))
    assert report["frame_source"] == "synthetic at 100x72"
    assert report["cpu_loops"] == cpu_loops  # which frame path was timed


def test_frames_have_the_asked_size(tmp_path):
    import cv2
    import numpy as np

    frame, source = load_frame("sample", (97, 31))
    assert frame.shape == (31, 97, 3) and frame.dtype == np.uint8 and "sample" in source
    assert frame.std() > 10  # a street scene, not a blank
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), np.full((5, 6, 3), (10, 20, 30), np.uint8))
    frame, _ = load_frame(str(path), (6, 5))
    assert (frame == (10, 20, 30)).all()  # read as BGR, as OpenCV writes it
    with pytest.raises(ValueError, match="missing.png: no such file"):
        load_frame(str(tmp_path / "missing.png"), (6, 5))
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        load_frame(str(tmp_path / "notes.png"), (6, 5))


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["benchmark", *argv])


def test_cli_json_with_compare(capsys):
    args = parse("--backbone", "mobilenetv2", "--height", "64", "--width", "64", "--device",
                 "cpu", "--precision", "fp32", "--iters", "2", "--warmup", "1",
                 "--matmul-size", "256", "--compare", "--json", "--no-progress",
                 "--frame-size", "80x48")
    assert args.func is cli.run and args.frame_size == (80, 48)
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    check_report(report, "onnxruntime", frame=(80, 48))
    compare = report["compare"]
    from canet_ros.inference.cpu_features import cpu_precisions
    from canet_ros.inference.cpu_runners import runtime_for
    from canet_ros.inference.openvino_runner import openvino_available

    # The peers, then the engine at each precision this CPU runs (runtime installed), and
    # OpenVINO's own sessions where it is installed (bf16 only on a CPU with bf16).
    expected = {"lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                "onnxruntime_canet", "torch_canet"}
    native = cpu_precisions()
    for precision in native:
        if runtime_for(precision) is not None:
            expected |= {f"engine_{precision}_model", f"engine_{precision}_pipeline"}
    if openvino_available():
        expected |= {"openvino_f32_canet"} | ({"openvino_bf16_canet"} if "bf16" in native
                                              else set())
    if kernels.installed():  # numba imports: the frame path with and without its loops
        expected |= {"labels_numba_loops", "labels_opencv_loops"}
    assert set(compare) == expected
    for name, value in compare.items():
        assert isinstance(value, float) and value > 0, name


def test_compare_says_what_it_is_doing(capsys):
    from canet_ros.benchmark.compare import compare_fns
    from canet_ros.inference import SegmentationEngine

    engine = SegmentationEngine(None, backbone="mobilenetv2", device="cpu", resolution=(64, 64),
                                warmup=False)
    compare_fns(engine, engine.prepare_model_input(), progress=True)
    err = capsys.readouterr().err
    for phase in ("lraspp", "deeplabv3", "exporting"):
        assert phase in err, err


@pytest.mark.parametrize("text", ["1920", "0x10", "axb", "10x-4"])
def test_bad_frame_sizes_are_usage_errors(text, capsys):
    with pytest.raises(SystemExit) as exc:
        parse("--frame-size", text)
    assert exc.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err


def test_cli_reports_engine_errors(capsys):
    from canet_ros.cli import main

    with pytest.raises(EngineError, match="fp16"):
        cli.run(parse("--device", "cpu", "--precision", "fp16", "--no-progress"))
    assert main(["benchmark", "--device", "cpu", "--precision", "fp16", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("canet benchmark: error:") and "fp16" in err


@pytest.mark.parametrize("backbone", [[], ["--backbone", "resnet18"]])
def test_a_checkpoint_is_timed_with_its_own_backbone(tmp_path, capsys, backbone):
    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID
    from canet_ros.cli import run_command
    from canet_ros.models import build_canet

    checkpoint = save_checkpoint(
        tmp_path / "r18.pt", build_canet("resnet18", 11).eval(),
        build_metadata("resnet18", CAMVID, mean=[0.5] * 3, std=[0.25] * 3, input_size=(64, 64)))
    args = parse("--checkpoint", str(checkpoint), *backbone, "--height", "64", "--width", "64",
                 "--device", "cpu", "--precision", "fp32", "--iters", "1", "--warmup", "0",
                 "--matmul-size", "64", "--json", "--no-progress")
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["backbone"] == "resnet18"
    mismatch = parse("--checkpoint", str(checkpoint), "--backbone", "mobilenetv2")
    assert run_command(mismatch.func, mismatch) == 1
    assert "resnet18 backbone, not for mobilenetv2" in capsys.readouterr().err

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


"""Reports of the precision that ran.

segment-bag and benchmark say which precision and runtime ran (``auto`` resolved), and
segment-bag's labels at a reduced precision are the engine's at that precision.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bag_helpers import image_array, make_checkpoint, read_bag, run_cli

from canet_ros.bag import SAMPLE_BAG, SAMPLE_IMAGE_TOPIC
from canet_ros.inference import SegmentationEngine, cpu_features, cpu_runners

pytest.importorskip("onnxruntime")
NONE = frozenset({"sse4_2", "avx2"})


def auto_here(checkpoint: Path, resolution: str) -> str:
    """Return what auto takes here once int8's graph is made (made here first where it is used)."""
    native = cpu_features.cpu_precisions()
    precision = next(p for p in cpu_runners.AUTO_ORDER if p == "fp32" or (
        p in native and cpu_runners.runtime_for(p) == "openvino"))
    if precision == "int8":
        SegmentationEngine(checkpoint, device="cpu", precision="int8", resolution=resolution,
                           warmup=False)
    return precision


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("precision_reports"))


def segment_sample(checkpoint: Path, out: Path, precision: str, capsys) -> dict:
    rc, stdout, err = run_cli(["sample", "--out", str(out), "--checkpoint", str(checkpoint),
                               "--resolution", "96x72", "--json", "--precision", precision,
                               "--no-progress"], capsys)
    assert rc == 0, err
    return json.loads(stdout)


@pytest.mark.parametrize("fake", [False, True], ids=["this cpu", "no bf16/int8"])
def test_segment_bag_reports_what_auto_chose(checkpoint, tmp_path, capsys, monkeypatch, fake):
    if fake:
        monkeypatch.setattr(cpu_features, "cpu_flags", lambda: NONE)
    precision = "fp32" if fake else auto_here(checkpoint, "96x72")
    runtime = cpu_runners.runtime_for(precision)
    short = segment_sample(checkpoint, tmp_path / "out", "auto", capsys)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for model in (short["model"], report["model"]):
        assert (model["precision"], model["runtime"]) == (precision, runtime)


def test_segment_bag_text_summary_names_precision_and_runtime(checkpoint, tmp_path, capsys):
    rc, stdout, err = run_cli(["sample", "--out", str(tmp_path / "out"), "--checkpoint",
                               str(checkpoint), "--resolution", "96x72", "--precision",
                               "fp32", "--no-progress"], capsys)
    assert rc == 0, err
    assert "precision: fp32 on onnxruntime" in stdout.splitlines()


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_segment_bag_labels_are_the_engines_at_that_precision(checkpoint, tmp_path, capsys,
                                                              precision):
    if precision not in cpu_features.cpu_precisions() or not cpu_runners.runtime_for(precision):
        pytest.skip(f"this CPU or install does not run {precision}")
    short = segment_sample(checkpoint, tmp_path / "out", precision, capsys)
    assert short["model"]["precision"] == precision
    engine = SegmentationEngine(checkpoint, device="cpu", precision=precision,
                                resolution="96x72")
    written = read_bag(Path(json.loads((tmp_path / "out" / "report.json").read_text())
                            ["output_bag"]))["/camera/segmentation/labels"]
    frames = read_bag(SAMPLE_BAG)[SAMPLE_IMAGE_TOPIC]
    assert len(written) == len(frames) == 8
    for (_, out), (_, msg) in zip(written, frames, strict=True):
        bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(image_array(out), engine.infer(bgr, "bgr").labels)


def test_benchmark_json_reports_what_auto_chose(checkpoint, capsys):
    from canet_ros.cli import main

    precision = auto_here(checkpoint, "64x48")
    argv = ["benchmark", "--checkpoint", str(checkpoint), "--height", "48", "--width", "64",
            "--device", "cpu", "--precision", "auto", "--iters", "1", "--warmup", "0",
            "--matmul-size", "64", "--json", "--no-progress"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["precision"], report["runtime"]) == (
        precision, cpu_runners.runtime_for(precision))

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

"""Errors and notes that give advice: following the advice must work.

Each message here once named a flag its command lacks, a package already installed, a
step that repeats the same error, or a time that disagreed with the measured one.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

import pytest

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.inference import EngineError, SegmentationEngine, cpu_features, cpu_runners

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def flags_of(add_parser) -> set[str]:
    """Every option string of the command that ``add_parser`` (a cli module's) adds."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = next(iter(sub.choices.values()))
    return {s for a in command._actions for s in a.option_strings}


def parser_of(add_parser) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(iter(sub.choices.values()))


def named_flags(text: str) -> set[str]:
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", text))


def installed(monkeypatch, ort: bool, ov: bool) -> None:
    monkeypatch.setattr(cpu_runners, "onnxruntime_available", lambda: ort)
    monkeypatch.setattr(cpu_runners, "openvino_available", lambda: ov)


# -- 1. a precision the named runtime does not run ----------------------------------------
def test_bf16_on_onnxruntime_with_openvino_installed_says_use_auto(monkeypatch):
    """With OpenVINO installed, "pip install openvino" changed nothing; runtime auto runs it."""
    pytest.importorskip("onnx")
    from canet_ros.cli import benchmark as benchmark_cli

    installed(monkeypatch, True, True)
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    with pytest.raises(EngineError) as refused:
        cpu_runners.choose_precision("bf16", "onnxruntime")
    text = str(refused.value)
    assert "pip install" not in text
    advice = re.search(r"--runtime (\w+)", text)
    assert advice, text
    # The advice parses as a benchmark command line, and that runtime runs bf16.
    args = parser_of(benchmark_cli.add_parser).parse_args(
        ["--precision", "bf16", "--runtime", advice.group(1)])
    assert cpu_runners.choose_precision(args.precision, args.runtime) == "bf16"


def test_a_package_is_named_only_where_it_is_missing(monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    installed(monkeypatch, True, False)
    with pytest.raises(EngineError) as refused:
        cpu_runners.choose_precision("bf16", "onnxruntime")
    packages = re.search(r"pip install ([\w ]+)", str(refused.value)).group(1).split()
    assert packages == ["openvino"]
    installed(monkeypatch, True, True)  # what it named, installed: the advice now runs
    assert cpu_runners.choose_precision("bf16", "auto") == "bf16"


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_runtime_torch_refusal_names_the_runtimes_that_run_it(monkeypatch, precision):
    """The runtimes named are exactly those runtime_for picks when each is asked for."""
    pytest.importorskip("onnx")
    installed(monkeypatch, True, True)
    runs = {r for r in LABELS if cpu_runners.runtime_for(precision, r) == r}
    with pytest.raises(EngineError, match="runtime='torch' runs fp32") as refused:
        SegmentationEngine(None, backbone="mobilenetv2", device="cpu", precision=precision,
                           runtime="torch", resolution=(64, 64), warmup=False)
    text = str(refused.value)
    assert {r for r, label in LABELS.items() if label in text} == runs
    assert ("only" in text) == (len(runs) == 1)


# -- 2. a diverged run's advice -----------------------------------------------------------
def test_diverged_run_does_not_promise_good_weights(tmp_path):
    """last.pt's weights are finite, not known good: they may diverge again at any lr."""
    from canet_ros.cli import train as train_cli
    from canet_ros.training.divergence import diverged

    (tmp_path / "last.pt").write_bytes(b"x")
    text = str(diverged("the loss is nan", 7, 1e3, tmp_path))
    assert "good" not in text
    assert "new run" in text and "diverges again" in text
    assert named_flags(text) <= flags_of(train_cli.add_parser)


# -- 3. auto's int8 note ------------------------------------------------------------------
def test_int8_note_where_the_cache_cannot_keep_the_graph(tmp_path, monkeypatch, caplog):
    """Starting at int8 cannot keep the graph: the note says the cache must be fixed first."""
    pytest.importorskip("onnx")
    if cpu_runners.runtime_for("int8") != "openvino" or cpu_runners.runtime_for("bf16") is None:
        pytest.skip("this install does not run int8 and bf16 on OpenVINO")
    from test_cpu_precisions import tiny_graph

    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512_bf16",
                                                                     "avx512_vnni"}))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CANET_ROS_CACHE", str(blocker / "cache"))  # can never be made
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    graph = tiny_graph(tmp_path / "tiny.onnx").read_bytes()
    runner = cpu_runners.make_cpu_runner(graph, (8, 8), 2, "auto")
    assert runner.precision == "bf16"
    line = next(r.getMessage() for r in caplog.records if "precision auto" in r.getMessage())
    assert "waits for its calibrated graph" in line
    assert cpu_runners.INT8_WAITING not in line
    assert "CANET_ROS_CACHE" in line and "writable" in line


def _seconds_at_1024x512(text: str) -> float:
    found = re.search(r"~(\d+(?:\.\d+)?) s at 1024x512", text)
    assert found, text
    return float(found.group(1))


def test_calibration_time_agrees_with_the_measured_one(monkeypatch, caplog, tmp_path):
    """The note and the calibration log give the same time, within docs' measurements."""
    from canet_ros.inference import quantize

    measured = [float(s) for s in re.findall(r"(\d+(?:\.\d+)?) s at 1024x512",
                                             (ROOT / "docs" / "performance.md").read_text())]
    assert measured
    monkeypatch.setattr(quantize, "quantize_graph", lambda *a: b"")
    source = type("Source", (), {"path": tmp_path, "frames": lambda self: []})()
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    quantize._make(tmp_path / "x.onnx", lambda f: f, source)
    logged = _seconds_at_1024x512(caplog.text)
    assert logged == _seconds_at_1024x512(cpu_runners.INT8_WAITING)
    assert all(0.5 * logged <= m <= 1.5 * logged for m in measured)


# -- 4. the flag that gives a data set's folder -------------------------------------------
def test_missing_replay_root_names_replay_root(tmp_path, monkeypatch):
    from canet_ros.cli import train as train_cli
    from canet_ros.data import DatasetError
    from canet_ros.training.config import TrainConfig
    from canet_ros.training.data_setup import with_replay

    monkeypatch.setenv("CANET_CAMVID_ROOT", str(tmp_path / "nowhere"))
    cfg = TrainConfig(data_root=str(tmp_path / "own"), replay_dataset="camvid",
                      replay_ratio=1.0)
    with pytest.raises(DatasetError) as refused:
        with_replay(cfg, None, CAMVID, False)
    text = str(refused.value)
    assert "no --data-root was given" not in text and "no --replay-root was given" in text
    assert named_flags(text) <= flags_of(train_cli.add_parser)


def test_evaluate_names_the_dataset_the_checkpoint_trained_on(tmp_path, monkeypatch, capsys):
    from canet_ros.cli import evaluate as evaluate_cli
    from canet_ros.models import build_canet

    model = build_canet("mobilenetv2", num_classes=11, pretrained_backbone=False)
    meta = build_metadata("mobilenetv2", CAMVID, input_size=(64, 48),
                          train_args={"dataset": "folder", "data_root": "../own"})
    ckpt = save_checkpoint(tmp_path / "fr.pt", model, meta, half=False)
    monkeypatch.setenv("CANET_CAMVID_ROOT", str(tmp_path / "nowhere"))
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "--dataset folder --data-root DIR" in err
    assert named_flags(err) <= flags_of(evaluate_cli.add_parser)


# -- 5, 6. evaluate's other advice --------------------------------------------------------
def test_holdout_with_include_says_to_drop_holdout():
    from canet_ros.evaluation import holdout_scope

    with pytest.raises(ValueError) as refused:
        holdout_scope({}, "0016E5", None, ["0016E5_07959"])
    text = str(refused.value)
    # Following it keeps --holdout only if the message does not say to leave it out.
    assert re.search(r"instead of --holdout|without --holdout", text), text


def test_engine_only_precision_advice_is_a_flag(tmp_path):
    from test_packaging_fallbacks import camvid_tree

    from canet_ros.cli import evaluate as evaluate_cli
    from canet_ros.evaluation import evaluate_checkpoint
    from canet_ros.models import build_canet

    model = build_canet("mobilenetv2", num_classes=11, pretrained_backbone=False)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, build_metadata("mobilenetv2", CAMVID),
                           half=False)
    root = camvid_tree(tmp_path / "camvid")
    with pytest.raises(ValueError) as refused:  # 16 px: under the engine's smallest input
        evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", resolution=(16, 16),
                            precision="bf16")
    advice = re.search(r"use (--precision) (\w+)", str(refused.value))
    assert advice, str(refused.value)
    args = parser_of(evaluate_cli.add_parser).parse_args([advice.group(1), advice.group(2)])
    result = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", resolution=(16, 16),
                                 precision=args.precision)
    assert result["frames"] == 2


def test_no_salvage_advice_fits_extract_frames(tmp_path, capsys):
    """extract-frames does not segment: the hint must still say what dropping the flag does."""
    from test_bag_damaged import mid_chunk, rewrite_sample

    from canet_ros.bag import SAMPLE_IMAGE_TOPIC
    from canet_ros.cli import main

    intact = rewrite_sample(tmp_path / "intact.mcap").read_bytes()
    source = tmp_path / "cut.mcap"
    source.write_bytes(mid_chunk(3)(intact))
    argv = ["extract-frames", str(source), "--topic", SAMPLE_IMAGE_TOPIC, "--no-prelabels",
            "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--no-salvage"]) == 1
    err = capsys.readouterr().err
    assert "without --no-salvage" in err and "segment" not in err
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0  # following it reads the rest


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_run_that_diverges_before_any_last_pt_is_not_told_to_resume(tmp_path):
    # The usual too-high --lr diverges in the first epoch, before a last.pt is written.
    from canet_ros.training.divergence import diverged
    text = str(diverged("loss nan", 5, 0.1, tmp_path))
    assert "--resume" not in text and "--lr" in text


def test_runtime_messages_without_a_runtime_installed_make_sense(monkeypatch):
    monkeypatch.setattr(cpu_runners, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(cpu_runners, "openvino_available", lambda: False)
    assert "not on runtime 'auto'" not in cpu_runners._missing_runtime("fp32", "auto")
    monkeypatch.setattr(cpu_runners, "onnxruntime_available", lambda: True)
    assert cpu_runners._missing_runtime("int8", "openvino").endswith("pip install openvino")

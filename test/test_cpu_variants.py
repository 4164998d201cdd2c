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

"""Other CPUs and installs: numba's JIT off, no /proc/cpuinfo, no onnxruntime or onnx.

An absent package is a ``None`` entry in ``sys.modules`` (its import fails as a missing
package's does); a machine without /proc/cpuinfo is ``cpu_features._proc_flags`` None.
"""
import importlib.util
import json
import logging
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli.info_system import report_lines, system_report
from canet_ros.inference import (
    EngineError,
    SegmentationEngine,
    cpu_features,
    cpu_runners,
    kernels,
    openvino_runner,
)
from canet_ros.models import build_canet

SIZE = (48, 36)  # network input = frame size: no resize
MEAN, STD = [0.5] * 3, [0.25] * 3
# What OpenVINO 2026.4 reports on an AVX2-only AMD EPYC (no VNNI, no bf16).
AVX2_CAPS = ["FP32", "INT8", "BIN", "EXPORT_IMPORT"]
needs_openvino = pytest.mark.skipif(not openvino_runner.openvino_available(),
                                    reason="openvino is not installed")
needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None,
                                reason="onnx is not installed")


def block(monkeypatch, *names):
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def checkpoint(path, seed):
    torch.manual_seed(seed)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():  # large logits: labels that vary and no near-ties
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    meta = build_metadata("mobilenetv2", CAMVID, mean=MEAN, std=STD, input_size=SIZE)
    return save_checkpoint(path, model, meta, half=False), model


# -- 1. NUMBA_DISABLE_JIT: the loops would run as Python, so they are not in use ----------
def test_numba_with_its_jit_disabled_is_not_in_use(monkeypatch):
    fake = types.SimpleNamespace(__version__="0.99.0", config=types.SimpleNamespace(
        DISABLE_JIT=True))
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "_numba", lambda: fake)
    assert not kernels.available() and kernels.loops_for("cpu") == "opencv"
    assert kernels.loops_status() == (False, "numba 0.99.0: JIT disabled (NUMBA_DISABLE_JIT)")
    line = [x for x in report_lines(system_report()) if x.startswith("CPU frame-path loops")]
    assert line == ["CPU frame-path loops: OpenCV/numpy (numba 0.99.0: JIT disabled "
                    "(NUMBA_DISABLE_JIT))"]
    fake.config.DISABLE_JIT = False
    assert kernels.available() and kernels.loops_status() == (True, "numba 0.99.0")


def test_numba_disable_jit_in_a_fresh_process_takes_the_opencv_path():
    if not kernels.installed():
        pytest.skip("numba is not installed")
    code = ("import json, numba\n"
            "from canet_ros.inference import kernels\n"
            "jitted = numba.njit(lambda x: x)\n"  # numba's own word: a Dispatcher or not
            "print(json.dumps([isinstance(jitted, numba.core.dispatcher.Dispatcher),\n"
            "                  kernels.available(), kernels.loops_for('cpu'),\n"
            "                  kernels.loops_status()[1]]))\n")
    env = {k: v for k, v in os.environ.items() if k != kernels.ENV}
    env["NUMBA_DISABLE_JIT"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    compiles, available, loops, status = json.loads(out.splitlines()[-1])
    assert not compiles  # numba itself would run them as Python
    assert (available, loops) == (False, "opencv") and "NUMBA_DISABLE_JIT" in status


# -- 2. No /proc/cpuinfo: OpenVINO's INT8 is no evidence of VNNI --------------------------
@pytest.fixture
def no_proc(monkeypatch):
    """Hide /proc/cpuinfo; OpenVINO's CPU plugin reports what it does on an AVX2 CPU."""
    caps = list(AVX2_CAPS)
    core = types.SimpleNamespace(get_property=lambda device, name: list(caps))
    monkeypatch.setattr(cpu_features, "_proc_flags", lambda path=None: None)
    monkeypatch.setattr(openvino_runner, "core", lambda: core)
    cpu_features.cpu_flags.cache_clear()
    yield caps
    monkeypatch.undo()
    cpu_features.cpu_flags.cache_clear()


def test_openvino_int8_capability_alone_offers_no_int8(no_proc, monkeypatch):
    monkeypatch.setattr(cpu_features, "_numpy_features",
                        lambda: {"AVX2": True, "AVX512F": False, "AVX512VNNI": False})
    assert cpu_features.cpu_precisions() == ("fp32",)
    assert cpu_runners.choose_precision("auto") == "fp32"
    with pytest.raises(EngineError, match="lacks AVX-512 VNNI"):
        cpu_runners.choose_precision("int8")


def test_without_proc_cpuid_vnni_and_openvino_bf16_count(no_proc, monkeypatch):
    monkeypatch.setattr(cpu_features, "_numpy_features",
                        lambda: {"AVX2": True, "AVX512F": True, "AVX512VNNI": True})
    assert cpu_features.cpu_precisions() == ("fp32", "int8")
    cpu_features.cpu_flags.cache_clear()
    no_proc.append("BF16")
    assert cpu_features.cpu_precisions() == ("fp32", "bf16", "int8")
    assert cpu_features.relevant_features() == ["avx2", "avx512f", "avx512_bf16",
                                                "avx512_vnni"]


def test_the_fallback_agrees_with_proc_cpuinfo_on_vnni(monkeypatch):
    real = cpu_features._proc_flags()
    if real is None or not real & {"avx2", "avx512f"}:
        pytest.skip("no x86 /proc/cpuinfo to compare with")
    caps = types.SimpleNamespace(get_property=lambda device, name: list(AVX2_CAPS))
    monkeypatch.setattr(cpu_features, "_proc_flags", lambda path=None: None)
    monkeypatch.setattr(openvino_runner, "core", lambda: caps)
    cpu_features.cpu_flags.cache_clear()
    try:
        fallback = cpu_features.cpu_flags()
    finally:
        monkeypatch.undo()
        cpu_features.cpu_flags.cache_clear()
    # numpy's CPUID probe has no AVX-VNNI entry: only AVX-512 VNNI is comparable.
    assert ("avx512_vnni" in fallback) == ("avx512_vnni" in real)
    assert ("avx2" in fallback) == ("avx2" in real)


# -- 3. The refusal gives the real reason -------------------------------------------------
def test_int8_refusal_names_accuracy_not_speed(monkeypatch):
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    with pytest.raises(EngineError) as exc:
        cpu_runners.choose_precision("int8")
    text = str(exc.value)
    assert "slower than fp32" not in text and "faster than fp32" in text
    assert "99.5 %" in text and "99.36 %" in text and "Use precision 'fp32' or 'auto'" in text


# -- 4. No onnxruntime: the cached export runs on OpenVINO; no onnx either: torch ---------
def torch_labels(model, frame):
    x = (torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        return model(x).argmax(1)[0].numpy()


@needs_openvino
@needs_onnx
def test_cached_export_runs_on_openvino_without_onnxruntime(tmp_path, monkeypatch):
    ckpt, model = checkpoint(tmp_path / "m.pt", seed=3)
    SegmentationEngine(ckpt, device="cpu", precision="fp32", warmup=False)  # caches it
    block(monkeypatch, "onnxruntime")
    from canet_ros.inference import torch_backend

    def no_torch(*args, **kwargs):
        raise AssertionError("the cached export was not used: torch loaded the model")

    monkeypatch.setattr(torch_backend, "load", no_torch)
    engine = SegmentationEngine(ckpt, device="cpu", precision="fp32", warmup=False)
    assert (engine.runtime, engine.precision) == ("openvino", "fp32")
    assert engine._model is None
    frame = np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], 3), np.uint8)
    agree = (engine.infer(frame).labels == torch_labels(model, frame)).mean()
    assert agree >= 0.999, agree


@needs_openvino
def test_without_onnx_info_and_engine_both_say_torch(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "empty_cache"))
    ckpt, model = checkpoint(tmp_path / "m.pt", seed=4)
    block(monkeypatch, "onnxruntime", "onnx")
    fp32 = [x for x in report_lines(system_report()) if x.startswith("  fp32:")]
    assert len(fp32) == 1 and "openvino" in fp32[0], fp32
    assert "pip install onnx" in fp32[0] and "run on torch" in fp32[0], fp32
    with caplog.at_level(logging.WARNING, "canet_ros"):
        engine = SegmentationEngine(ckpt, device="cpu", precision="fp32", warmup=False)
    assert (engine.runtime, engine.precision) == ("torch", "fp32")
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "onnx package (pip install onnx)" in said and "ONNX Runtime" not in said, said


# -- 5. benchmark --compare without onnxruntime keeps the rows it can time -----------------
@needs_openvino
@needs_onnx
def test_compare_without_onnxruntime_times_the_cpu_rows(monkeypatch):
    from canet_ros.benchmark import make_image_msg
    from canet_ros.benchmark.compare import compare_fns

    block(monkeypatch, "onnxruntime")
    engine = SegmentationEngine(None, backbone="mobilenetv2", device="cpu", resolution=SIZE,
                                warmup=False)
    assert engine.runtime == "openvino"
    frame = np.zeros((SIZE[1] * 2, SIZE[0] * 2, 3), np.uint8)
    fns, skipped, notes = compare_fns(engine, engine.prepare_model_input(), progress=False,
                                      msg=make_image_msg(frame))
    native = cpu_features.cpu_precisions()
    expected = {"lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "torch_canet",
                "openvino_f32_canet"} | ({"openvino_bf16_canet"} if "bf16" in native else set())
    for precision in native:
        if cpu_runners.runtime_for(precision) is not None:
            expected |= {f"engine_{precision}_model", f"engine_{precision}_pipeline"}
    if kernels.available():
        expected |= {"labels_numba_loops", "labels_opencv_loops"}
    assert set(fns) == expected
    assert skipped == {"onnxruntime_canet": None}
    assert "onnxruntime_canet not timed: onnxruntime is not installed" in notes, notes


def torch_engine(tmp_path, monkeypatch):
    """Return an engine made with no onnx package and an empty export cache: torch's."""
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "empty_cache"))
    block(monkeypatch, "onnx")
    engine = SegmentationEngine(None, backbone="mobilenetv2", device="cpu", resolution=SIZE,
                                warmup=False)
    assert engine.runtime == "torch"
    return engine


def test_compare_without_onnx_notes_the_rows_it_cannot_time(tmp_path, monkeypatch):
    from canet_ros.benchmark import make_image_msg
    from canet_ros.benchmark.compare import compare_fns

    engine = torch_engine(tmp_path, monkeypatch)
    msg = make_image_msg(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))
    fns, skipped, notes = compare_fns(engine, engine.prepare_model_input(), progress=False,
                                      msg=msg)
    # Every CPU row but torchvision's starts from the ONNX export onnx would make.
    assert set(fns) == {"lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"}
    assert skipped == {"onnxruntime_canet": None}
    [rows] = [n for n in notes if n.startswith("engine_<precision>, openvino_*, labels_")]
    assert rows.endswith("not timed: exporting the model to ONNX needs the onnx package "
                         "(pip install onnx)"), notes


@pytest.mark.parametrize("jit_disabled", [True, False])
def test_compare_drops_both_loop_rows_where_numba_cannot_compile(
        tmp_path, monkeypatch, jit_disabled):
    from canet_ros.benchmark import compare, cpu_precisions, make_image_msg

    engine = torch_engine(tmp_path, monkeypatch)
    # A CPU with no engine precision to time and no OpenVINO: only the loop rows are left.
    monkeypatch.setattr(cpu_precisions, "cpu_precisions", lambda: ())
    monkeypatch.setattr(cpu_precisions, "openvino_available", lambda: False)
    monkeypatch.delenv(kernels.ENV, raising=False)
    fake = types.SimpleNamespace(__version__="0.99.0", config=types.SimpleNamespace(
        DISABLE_JIT=jit_disabled))
    monkeypatch.setattr(kernels, "_numba", lambda: fake)
    msg = make_image_msg(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))
    fns, notes = compare._cpu_rows(engine, b"graph", None, engine.prepare_model_input(), msg,
                                   False)
    if jit_disabled:  # both rows would time the OpenCV path: nothing to compare
        assert fns == {}
        assert ("labels_numba_loops, labels_opencv_loops not timed: numba 0.99.0: JIT "
                "disabled (NUMBA_DISABLE_JIT)") in notes, notes
    else:
        assert set(fns) == {"labels_numba_loops", "labels_opencv_loops"}

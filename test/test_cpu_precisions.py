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

"""CPU precisions: the feature probe, the choice, refusals, int8 calibration, agreement."""
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from canet_ros.inference import EngineError, SegmentationEngine, cpu_features, cpu_runners
from canet_ros.inference.calibration import CalibrationSource

ROOT = Path(__file__).resolve().parents[1]
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
NONE = frozenset({"sse4_2", "avx2"})
ALL = frozenset({"avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"})


def fake_cpu(monkeypatch, flags):
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset(flags))


def native(precision):
    return precision in cpu_features.cpu_precisions()


# -- the probe and the choice -------------------------------------------------------------
def test_proc_cpuinfo_flags_are_read(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\n"
                    "flags\t\t: fpu sse avx2 avx512f avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_features._proc_flags(info) == {"fpu", "sse", "avx2", "avx512f", "avx512_vnni"}
    assert cpu_features._proc_flags(tmp_path / "absent") is None


@pytest.mark.parametrize("flags, expected", [
    (NONE, ("fp32",)),
    ({"avx512_bf16"}, ("fp32", "bf16")),
    ({"amx_bf16"}, ("fp32", "bf16")),
    ({"avx_vnni"}, ("fp32", "int8")),
    ({"avx512_vnni", "avx512f"}, ("fp32", "int8")),
    (ALL, ("fp32", "bf16", "int8")),
])
def test_native_precisions_follow_the_flags(flags, expected):
    assert cpu_features.cpu_precisions(frozenset(flags)) == expected


@pytest.mark.parametrize("precision, need", [("bf16", "BF16"), ("int8", "VNNI")])
def test_a_precision_the_cpu_lacks_is_refused(monkeypatch, precision, need):
    fake_cpu(monkeypatch, NONE)
    with pytest.raises(EngineError, match=f"lacks .*{need}.*emulated"):
        cpu_runners.choose_precision(precision)


def test_auto_picks_the_first_native_installed_precision(monkeypatch):
    fake_cpu(monkeypatch, NONE)
    assert cpu_runners.choose_precision("auto") == "fp32"
    fake_cpu(monkeypatch, ALL)
    monkeypatch.setattr(cpu_runners, "openvino_available", lambda: True)
    assert cpu_runners.choose_precision("auto") == "int8"
    fake_cpu(monkeypatch, {"avx512_bf16"})
    assert cpu_runners.choose_precision("auto") == "bf16"
    # Auto's reduced precisions were measured on OpenVINO: without it auto keeps fp32,
    # though int8 by name still runs on ONNX Runtime and a named bf16 is refused.
    fake_cpu(monkeypatch, ALL)
    monkeypatch.setattr(cpu_runners, "openvino_available", lambda: False)
    assert cpu_runners.choose_precision("auto") == "fp32"
    assert cpu_runners.choose_precision("int8") == "int8"
    with pytest.raises(EngineError, match="needs: pip install openvino"):
        cpu_runners.choose_precision("bf16")
    with pytest.raises(EngineError, match="not a CPU precision"):
        cpu_runners.choose_precision("fp16")


def test_runtime_for_each_precision(monkeypatch):
    monkeypatch.setattr(cpu_runners, "openvino_available", lambda: True)
    monkeypatch.setattr(cpu_runners, "onnxruntime_available", lambda: True)
    assert [cpu_runners.runtime_for(p) for p in ("fp32", "bf16", "int8")] == \
        ["onnxruntime", "openvino", "openvino"]
    assert cpu_runners.runtime_for("bf16", "onnxruntime") is None
    assert cpu_runners.runtime_for("int8", "onnxruntime") == "onnxruntime"
    monkeypatch.setattr(cpu_runners, "onnxruntime_available", lambda: False)
    assert cpu_runners.runtime_for("fp32") == "openvino"
    assert cpu_runners.runtime_for("int8") is None  # the quantizer is ONNX Runtime's


def test_engine_refuses_before_exporting(monkeypatch):
    fake_cpu(monkeypatch, NONE)
    with pytest.raises(EngineError, match="lacks"):
        SegmentationEngine(None, backbone="mobilenetv2", device="cpu", precision="bf16",
                           resolution=(64, 64), warmup=False)
    with pytest.raises(EngineError, match="runtime='torch' runs fp32"):
        SegmentationEngine(None, backbone="mobilenetv2", device="cpu", precision="int8",
                           runtime="torch", resolution=(64, 64), warmup=False)


# -- int8 calibration -----------------------------------------------------------------------
def tiny_graph(path):
    """Build input (1,3,8,8) -> 3x3 conv (4) -> relu -> 1x1 conv (2) -> logits, fixed weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(2, 4, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["input", "w1"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 8, 8])], [w1, w2])
    # IR 8 (onnx 1.12, where opset 17 began): make_model would write the installed onnx's
    # own IR, which an older onnxruntime refuses (onnx 1.23 writes 14, onnxruntime 1.30
    # reads up to 13), and the test would fail on an install the package accepts.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def image_folder(folder, seed):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return CalibrationSource(folder, is_bag=False)


def to_input(frame):
    return (frame.astype(np.float32).transpose(2, 0, 1)[None] - 128.0) / 64.0


def test_calibration_is_deterministic_and_made_once(tmp_path, monkeypatch):
    from canet_ros.inference import quantize

    fp32 = tiny_graph(tmp_path / "tiny.onnx")
    source = image_folder(tmp_path / "frames", seed=1)
    first = quantize.int8_graph(fp32, to_input, source)
    assert first.parent == fp32.parent and first.name.startswith("tiny_int8_")
    data = first.read_bytes()
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Made again from scratch: the same bytes.
    again = quantize.quantize_graph(fp32, [to_input(f) for f in source.frames()])
    assert again == data
    # Found in the cache: no second quantization.
    monkeypatch.setattr(quantize, "quantize_graph", lambda *a: pytest.fail("quantized again"))
    assert quantize.int8_graph(fp32, to_input, source) == first
    monkeypatch.undo()
    # Other frames: another file, other scales.
    other = quantize.int8_graph(fp32, to_input, image_folder(tmp_path / "other", seed=2))
    assert other != first and other.read_bytes() != data


def test_calibration_source_defaults_to_the_sample_bag(monkeypatch, tmp_path):
    from canet_ros.inference.calibration import CALIBRATION_ENV, calibration_source

    monkeypatch.delenv(CALIBRATION_ENV, raising=False)
    source = calibration_source()
    assert source.is_bag and source.path.name == "camvid_sample"
    frames = source.frames()
    assert len(frames) == 8 and frames[0].shape == (360, 480, 3)
    monkeypatch.setenv(CALIBRATION_ENV, str(tmp_path / "missing"))
    with pytest.raises(EngineError, match="missing: calibration frames not found"):
        calibration_source()


# -- engines at each precision ----------------------------------------------------------------
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from canet_ros.inference import SegmentationEngine
    engine = SegmentationEngine(sys.argv[1], device="cpu", precision=sys.argv[2])
    labels = engine.infer(np.load(sys.argv[3])).labels
    np.save(sys.argv[4], labels)
    print(json.dumps({"torch": "torch" in sys.modules, "runtime": engine.runtime,
                      "precision": engine.precision}))
""")


def available_precisions():
    return [p for p in ("bf16", "int8") if native(p) and cpu_runners.runtime_for(p)]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    import torch

    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID
    from canet_ros.models import build_canet

    folder = tmp_path_factory.mktemp("cpu_precisions")
    torch.manual_seed(5)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():  # decisive logits: few near-ties for rounding to flip
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
    meta = build_metadata("mobilenetv2", CAMVID, input_size=(96, 64))
    path = save_checkpoint(folder / "seeded.pt", model, meta)
    frame = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    frame[10:50, 20:70] = (40, 150, 200)
    np.save(folder / "frame.npy", frame)
    return path, folder, frame


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_cached_path_runs_each_precision_without_torch(seeded, precision):
    if precision not in available_precisions():
        pytest.skip(f"this CPU or install does not run {precision}")
    path, folder, frame = seeded
    engine = SegmentationEngine(path, device="cpu", precision=precision)  # exports, caches
    out = folder / f"{precision}.npy"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), precision,
                           str(folder / "frame.npy"), str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"torch": False, "runtime": engine.runtime, "precision": precision}
    np.testing.assert_array_equal(np.load(out), engine.infer(frame).labels)


def test_auto_reports_what_it_chose(seeded):
    path, _, _ = seeded
    if "int8" in available_precisions():  # auto takes int8 once its graph is made
        SegmentationEngine(path, device="cpu", precision="int8", warmup=False)
    engine = SegmentationEngine(path, device="cpu", precision="auto", warmup=False)
    # auto takes a reduced precision only on OpenVINO, where its accuracy was measured
    # (docs/performance.md); int8 on ONNX Runtime alone is for those who ask for it.
    openvino = importlib.util.find_spec("openvino") is not None
    expected = next((p for p in cpu_runners.AUTO_ORDER
                     if p in available_precisions() and openvino), "fp32")
    assert engine.precision == expected
    assert engine.runtime == cpu_runners.runtime_for(expected)


def test_reduced_precisions_agree_with_fp32_on_real_frames():
    """The bundled model on the sample bag's CamVid frames at a small network size."""
    precisions = available_precisions()
    if not precisions:
        pytest.skip("this CPU or install runs neither bf16 nor int8")
    frames = CalibrationSource(ROOT / "canet_ros/samples/camvid_sample", True).frames()
    engines = {p: SegmentationEngine("default", device="cpu", precision=p,
                                     resolution=(240, 180)) for p in ["fp32", *precisions]}
    ref = [engines["fp32"].infer(f).labels.copy() for f in frames]
    # The rule at 480x360 on CamVid val is 99.5 %; small inputs make more boundary pixels.
    floor = {"bf16": 99.5, "int8": 99.0}
    for precision in precisions:
        same = sum(int((engines[precision].infer(f).labels == r).sum())
                   for f, r in zip(frames, ref, strict=True))
        share = 100.0 * same / sum(r.size for r in ref)
        assert share >= floor[precision], (precision, share)
        assert share < 100.0, precision  # it really ran in reduced precision


def test_auto_falls_back_when_int8_cannot_be_made(tmp_path, monkeypatch):
    from canet_ros.inference import quantize

    if not cpu_runners.openvino_available():
        pytest.skip("openvino is not installed")
    fake_cpu(monkeypatch, ALL)
    monkeypatch.setattr(cpu_runners, "_int8_ready", lambda graph: True)
    monkeypatch.setattr(quantize, "int8_graph", lambda *a: (_ for _ in ()).throw(
        OSError("no calibration frames")))
    graph = tiny_graph(tmp_path / "tiny.onnx")
    runner = cpu_runners.make_cpu_runner(graph, (8, 8), 2, "auto", preprocess=to_input)
    assert (runner.precision, runner.runtime) == ("bf16", "openvino")
    with pytest.raises(OSError, match="no calibration frames"):  # asked for by name: no
        cpu_runners.make_cpu_runner(graph, (8, 8), 2, "int8", preprocess=to_input)


def test_auto_takes_int8_once_its_graph_is_made(seeded, caplog, monkeypatch):
    """Check that the first start does not calibrate unasked.

    A start at int8 makes the graph once, in the file the next (cached, torch-free) start
    looks for.
    """
    import logging

    from canet_ros.inference import quantize

    if "int8" not in available_precisions() or cpu_runners.runtime_for("int8") != "openvino":
        pytest.skip("this CPU or install does not run int8 on OpenVINO")
    path, _, _ = seeded
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    size = (64, 48)  # not exported yet in this run: the first start takes the torch path
    first = SegmentationEngine(path, device="cpu", precision="auto", resolution=size,
                               warmup=False)
    assert first.precision == ("bf16" if "bf16" in available_precisions() else "fp32")
    assert cpu_runners.INT8_WAITING in caplog.text
    made = []
    real = quantize.quantize_graph
    monkeypatch.setattr(quantize, "quantize_graph", lambda *a: made.append(1) or real(*a))
    assert SegmentationEngine(path, device="cpu", precision="int8", resolution=size,
                              warmup=False).precision == "int8"
    assert SegmentationEngine(path, device="cpu", precision="auto", resolution=size,
                              warmup=False).precision == "int8"
    assert made == [1]


def test_int8_made_on_the_first_start_is_found_by_the_next(seeded, monkeypatch):
    """Check that a second start at int8 finds the int8 graph the first one made.

    The first start exports (torch) and calibrates; the next, from the cached export,
    finds that graph instead of calibrating again.
    """
    from canet_ros.inference import quantize

    if "int8" not in available_precisions():
        pytest.skip("this CPU or install does not run int8")
    path, _, _ = seeded
    size = (72, 48)  # not exported yet in this run
    made = []
    real = quantize.quantize_graph
    monkeypatch.setattr(quantize, "quantize_graph", lambda *a: made.append(1) or real(*a))
    for _ in range(2):
        SegmentationEngine(path, device="cpu", precision="int8", resolution=size, warmup=False)
    assert made == [1]


def test_a_damaged_int8_graph_is_made_again(seeded, caplog):
    from canet_ros.inference import quantize
    from canet_ros.inference.onnx_runtime import cached_graph, file_digest

    if "int8" not in available_precisions():
        pytest.skip("this CPU or install does not run int8")
    path, _, frame = seeded
    size = (80, 56)  # its own cache entries
    expected = SegmentationEngine(path, device="cpu", precision="int8", resolution=size,
                                  warmup=False).infer(frame).labels
    int8 = quantize.cached_int8(cached_graph(file_digest(path), size).path)
    whole = int8.read_bytes()
    int8.write_bytes(whole[: len(whole) // 2])  # a copy or a disk that gave out half-way
    engine = SegmentationEngine(path, device="cpu", precision="int8", resolution=size,
                                warmup=False)
    assert engine.precision == "int8" and "unusable" in caplog.text
    np.testing.assert_array_equal(engine.infer(frame).labels, expected)
    assert int8.read_bytes() == whole  # calibration is deterministic: the same graph


def test_auto_on_int8_without_bf16_waits_at_fp32(tmp_path, monkeypatch, caplog):
    """A CPU with VNNI but no bf16: auto is fp32 until the int8 graph is made, then int8."""
    import logging

    from canet_ros.inference.calibration import CALIBRATION_ENV

    if cpu_runners.runtime_for("int8") != "openvino" or not native("int8"):
        pytest.skip("this CPU or install does not run int8 on OpenVINO")
    fake_cpu(monkeypatch, {"avx2", "avx_vnni"})
    image_folder(tmp_path / "frames", seed=3)
    monkeypatch.setenv(CALIBRATION_ENV, str(tmp_path / "frames"))
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    graph = tiny_graph(tmp_path / "tiny.onnx")
    first = cpu_runners.make_cpu_runner(graph, (8, 8), 2, "auto", preprocess=to_input)
    assert (first.precision, first.runtime) == ("fp32", "onnxruntime")
    assert cpu_runners.INT8_WAITING in caplog.text
    made = cpu_runners.make_cpu_runner(graph, (8, 8), 2, "int8", preprocess=to_input)
    assert (made.precision, made.runtime) == ("int8", "openvino")
    caplog.clear()
    later = cpu_runners.make_cpu_runner(graph, (8, 8), 2, "auto", preprocess=to_input)
    assert (later.precision, later.runtime) == ("int8", "openvino")
    assert cpu_runners.INT8_WAITING not in caplog.text

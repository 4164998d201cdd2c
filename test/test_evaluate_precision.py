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


"""``canet evaluate --precision``: scored through the engine segment-bag and the node run."""
import importlib.util
import json

import numpy as np
import pytest
from test_evaluate import _camvid_tree, _tiny_checkpoint, hand_confusion, read_tree

from canet_ros.cli import EXIT_ERROR
from canet_ros.cli import evaluate as evaluate_cli
from canet_ros.evaluation import TTA, evaluate_checkpoint
from canet_ros.inference import SegmentationEngine, cpu_features, cpu_runners

pytest.importorskip("onnxruntime")
SIZE = (32, 32)


def runs(precision):
    return precision in cpu_features.cpu_precisions() and cpu_runners.runtime_for(precision)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate_precision")
    root = _camvid_tree(folder / "camvid", frames=2)
    return root, _tiny_checkpoint(folder / "m.pt", half=False)


def labels_of(engine, frames):
    return [engine.infer(np.ascontiguousarray(f), "rgb").labels.copy() for f in frames]


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_evaluate_scores_the_engine_at_that_precision(tree, precision):
    if not runs(precision):
        pytest.skip(f"this CPU or install does not run {precision}")
    root, ckpt = tree
    res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", resolution=SIZE,
                              precision=precision)
    engine = SegmentationEngine(ckpt, device="cpu", precision=precision, resolution=SIZE)
    # OpenVINO runs both where installed (the faster one); int8 else runs on ONNX Runtime.
    runtime = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"
    assert (res["precision"], res["runtime"]) == (precision, engine.runtime) == \
        (precision, runtime)
    frames, labels = read_tree(root)
    preds = labels_of(engine, frames)
    # The node's and segment-bag's labels at that precision, scored at label size.
    assert np.array_equal(np.array(res["confusion_matrix"]), hand_confusion(preds, labels, 11))
    fp32 = labels_of(SegmentationEngine(ckpt, device="cpu", resolution=SIZE), frames)
    same = sum(int((p == r).sum()) for p, r in zip(preds, fp32, strict=True))
    # A decisive untrained model (classifier scaled up) on random 2x2-block frames.
    assert same / sum(r.size for r in fp32) >= 0.95


def test_auto_reports_the_precision_it_ran(tree):
    root, ckpt = tree
    if runs("int8") == "openvino":  # auto takes int8 once its graph is made: make it
        SegmentationEngine(ckpt, device="cpu", precision="int8", resolution=SIZE, warmup=False)
    res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", resolution=SIZE,
                              precision="auto")
    expected = next((p for p in cpu_runners.AUTO_ORDER
                     if p == "fp32" or (runs(p) and cpu_runners.openvino_available())), "fp32")
    assert res["precision"] == expected
    assert res["runtime"] == cpu_runners.runtime_for(expected)


def test_cli_refuses_a_precision_the_cpu_lacks(tree, monkeypatch, capsys):
    root, ckpt = tree
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"sse4_2", "avx2"}))
    argv = ["--checkpoint", str(ckpt), "--data-root", str(root), "--resolution", "32x32",
            "--device", "cpu", "--precision", "int8", "--json"]
    assert evaluate_cli.main(argv) == EXIT_ERROR
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if "error" in line]
    assert len(err) == 1 and "lacks AVX-512 VNNI" in err[0] and "emulated" in err[0], err
    assert captured.out == ""
    # On that CPU auto is fp32, and says so.
    assert evaluate_cli.main(argv[:-3] + ["--precision", "auto", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["precision"], out["runtime"]) == ("fp32", "onnxruntime")


def test_a_path_without_the_engine_refuses_reduced_precisions(tree):
    root, ckpt = tree
    with pytest.raises(ValueError, match="precision 'bf16' runs through the inference engine"):
        evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", resolution=SIZE,
                            tta=TTA(flip=True, scales=(0.75, 1.0)), precision="bf16")


def test_tta_without_flip_scores_one_plain_pass(tree):
    root, ckpt = tree
    frames, labels = read_tree(root)
    plain = labels_of(SegmentationEngine(ckpt, device="cpu", resolution=SIZE), frames)
    mirrored = labels_of(SegmentationEngine(ckpt, device="cpu", resolution=SIZE, tta=True),
                         frames)
    assert any(not np.array_equal(p, m) for p, m in zip(plain, mirrored, strict=True))
    for tta, preds in ((None, plain), (TTA(flip=False), plain), (TTA(flip=True), mirrored)):
        res = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", resolution=SIZE,
                                  tta=tta)
        assert np.array_equal(np.array(res["confusion_matrix"]),
                              hand_confusion(preds, labels, 11)), tta

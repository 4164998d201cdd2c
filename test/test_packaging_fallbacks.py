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


"""An install with only the declared dependencies: what the optional extras must not cost.

Each absent package is simulated in this process by a ``None`` entry in ``sys.modules``,
which makes its import fail as a missing package's does.
"""
import ast
import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_evaluate import _cli_args as cli_args  # evaluate's flags as the CLI parses them

from canet_ros import data as data_module
from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli import evaluate as evaluate_cli
from canet_ros.inference import EngineError, SegmentationEngine, cpu_features, cpu_runners
from canet_ros.models import build_canet

ROOT = Path(__file__).resolve().parents[1]
SIZE = (48, 36)  # network input = frame size: the engine path (>= 32 px), no resize


def block(monkeypatch, *names):
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def seeded_model():
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():  # labels that vary across the frame
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    return model


def camvid_tree(root: Path, frames: int = 2) -> Path:
    rng = np.random.default_rng(1)
    for folder in ("val", "valannot"):
        (root / folder).mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(root / "val" / f"0016E5_{i:05d}.png"),
                    rng.integers(0, 255, (SIZE[1], SIZE[0], 3)).astype(np.uint8))
        cv2.imwrite(str(root / "valannot" / f"0016E5_{i:05d}.png"),
                    rng.integers(0, 12, (SIZE[1], SIZE[0])).astype(np.uint8))
    return root


@pytest.fixture()
def tiny(tmp_path):
    """Return a CamVid-layout folder, a seeded checkpoint at the frames' size, its model."""
    model = seeded_model()
    meta = build_metadata("mobilenetv2", CAMVID, mean=[0.5] * 3, std=[0.25] * 3,
                          input_size=SIZE)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, meta, half=False)
    return camvid_tree(tmp_path / "camvid"), ckpt, model


@torch.no_grad()
def hand_miou(model, root: Path) -> float:
    """Forward each frame in torch, argmax, count IoU = TP / (TP + FP + FN) per class."""
    m = np.zeros((11, 11), np.int64)
    for path in sorted((root / "val").iterdir()):
        rgb = cv2.imread(str(path))[:, :, ::-1].copy()
        x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
        pred = model(x).argmax(1)[0].numpy().ravel()
        gt = cv2.imread(str(root / "valannot" / path.name), cv2.IMREAD_UNCHANGED).ravel()
        np.add.at(m, (gt[gt < 11], pred[gt < 11]), 1)
    tp = np.diag(m)
    union = m.sum(0) + m.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


# -- 1. fp32 without ONNX Runtime (an optional extra) runs on torch ------------------------
def test_fp32_needs_no_cpu_runtime_but_a_named_one_and_bf16_int8_still_do(monkeypatch):
    block(monkeypatch, "onnxruntime", "openvino")
    monkeypatch.setattr(cpu_features, "cpu_flags",
                        lambda: frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}))
    assert cpu_runners.runtime_for("fp32") is None
    assert cpu_runners.choose_precision("fp32") == "fp32"
    assert cpu_runners.choose_precision("auto") == "fp32"
    with pytest.raises(EngineError, match="with runtime 'onnxruntime' needs: pip install "
                                          "onnxruntime"):
        cpu_runners.choose_precision("fp32", "onnxruntime")
    with pytest.raises(EngineError, match="needs: pip install openvino"):
        cpu_runners.choose_precision("bf16")
    # int8's quantizer needs onnx too; only what is missing is named.
    onnx_too = " onnx" if importlib.util.find_spec("onnx") is None else ""
    with pytest.raises(EngineError, match=f"needs: pip install onnxruntime{onnx_too}$"):
        cpu_runners.choose_precision("int8")
    # The runner factory itself has nothing to run fp32 on: a clear refusal, no ImportError.
    with pytest.raises(EngineError, match="needs: pip install onnxruntime"):
        cpu_runners.make_cpu_runner(b"graph", (64, 64), 11, "fp32")


def test_engine_and_evaluate_default_to_torch_fp32_without_onnxruntime(
        tiny, monkeypatch, capsys):
    root, ckpt, model = tiny
    block(monkeypatch, "onnxruntime", "openvino")
    engine = SegmentationEngine(ckpt, device="cpu", warmup=False)  # precision fp32
    assert (engine.runtime, engine.precision) == ("torch", "fp32")
    assert evaluate_cli.run(cli_args(checkpoint=ckpt, data_root=root, device="cpu",
                                     json=True)) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["runtime"], out["precision"], out["resolution"]) == ("torch", "fp32",
                                                                     list(SIZE))
    assert out["miou"] == pytest.approx(hand_miou(model, root), abs=1e-12)


def test_startup_cache_step_passes_without_a_cpu_runtime(monkeypatch):
    from canet_ros.benchmark import startup

    block(monkeypatch, "onnxruntime", "openvino")
    built = []
    monkeypatch.setattr("canet_ros.inference.SegmentationEngine",
                        lambda *args, **kw: built.append(args))
    startup._cache_export("default")  # the node runs torch here: no export to cache
    assert built == []


# -- 2. matplotlib: declared for rosdep, and a chart never costs the scores ---------------
def test_package_xml_declares_every_install_requirement_rosdep_knows():
    tree = ast.parse((ROOT / "setup.py").read_text())
    requires = next(kw.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                    for kw in node.keywords if kw.arg == "install_requires")
    names = {re.split(r"[<>=!~ ;\[]", ast.literal_eval(item))[0].lower()
             for item in requires.elts}
    # rosdep keys (rosdistro's rosdep/python.yaml); rosbags and mcap come from pip only.
    rosdep = {"numpy": "python3-numpy", "opencv-python-headless": "python3-opencv",
              "pyyaml": "python3-yaml", "tqdm": "python3-tqdm",
              "matplotlib": "python3-matplotlib", "pillow": "python3-pil"}
    assert names - set(rosdep) == {"rosbags", "mcap"}
    declared = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    assert {rosdep[n] for n in names if n in rosdep} <= declared


def test_save_vis_without_matplotlib_keeps_the_scores(tiny, tmp_path, monkeypatch, capsys,
                                                      caplog):
    root, ckpt, model = tiny
    args = {"checkpoint": ckpt, "data_root": root, "device": "cpu", "json": True}
    assert evaluate_cli.run(cli_args(**args)) == 0
    normal = json.loads(capsys.readouterr().out)
    block(monkeypatch, "matplotlib", "matplotlib.pyplot")
    caplog.clear()
    vis = tmp_path / "vis"
    assert evaluate_cli.run(cli_args(save_vis=vis, **args)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["miou"] == normal["miou"] and out["per_class"] == normal["per_class"]
    assert "matplotlib" in out["chart_error"]
    # The side-by-side frames need no matplotlib; the two charts are what is missing.
    assert sorted(p.name for p in vis.iterdir()) == ["000_0016E5_00000.png",
                                                     "001_0016E5_00001.png"]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "matplotlib" in warnings[0].getMessage()


# -- 3. the default CamVid root of an installed package -----------------------------------
def test_a_missing_default_data_root_names_the_ways_to_give_one(tiny, tmp_path, monkeypatch,
                                                                capsys):
    _, ckpt, _ = tiny
    # What an installed package's default becomes: a folder inside the environment.
    inside = tmp_path / "venv" / "lib" / "python3.11" / "shared" / "data" / "camvid"
    real_default = data_module.default_data_root
    monkeypatch.delenv("CANET_CAMVID_ROOT", raising=False)
    monkeypatch.setattr(data_module, "default_data_root", lambda name: inside)
    assert evaluate_cli.run(cli_args(checkpoint=ckpt, device="cpu")) == 1
    err = capsys.readouterr().err
    assert str(inside) in err and "no --data-root was given" in err
    assert "--data-root DIR" in err and "CANET_CAMVID_ROOT=DIR" in err
    # Named by the environment variable: the message says that is where it came from.
    monkeypatch.setattr(data_module, "default_data_root", real_default)
    monkeypatch.setenv("CANET_CAMVID_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(data_module.DatasetError, match=r"\$CANET_CAMVID_ROOT names it"):
        data_module.build_dataset("camvid", None, "val")


def test_a_given_data_root_keeps_its_own_message(tmp_path):
    with pytest.raises(data_module.DatasetError, match="CamVid folder not found") as info:
        data_module.build_dataset("camvid", tmp_path / "nowhere", "val")
    assert "no --data-root was given" not in str(info.value)

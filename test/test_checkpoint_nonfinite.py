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

"""A diverged run's checkpoint (NaN or infinite weights) is refused in one line everywhere.

Such weights load and run without an error: labels of one class, an mIoU near 0, a
confidence of 255. read_checkpoint, which every consumer goes through, refuses them.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training import make_camvid_tree
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import (
    CheckpointError,
    build_metadata,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from canet_ros.classes import CAMVID
from canet_ros.cli import main as canet_main
from canet_ros.models import build_canet

WEIGHT, BUFFER = "classifier.weight", "spatial.0.1.running_var"
ADVICE = ("the training run that wrote it diverged: train again with a lower --lr, or "
          "pick an earlier checkpoint")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    return save_checkpoint(path, build_canet("mobilenetv2", CAMVID.num_classes),
                           build_metadata("mobilenetv2", CAMVID, input_size=(64, 48)))


def spoiled(good: Path, out: Path, changes: dict) -> Path:
    """Copy ``good`` with the first value of each named tensor set as ``changes`` says."""
    blob = torch.load(good, weights_only=True)
    for name, value in changes.items():
        blob["state_dict"][name].view(-1)[0] = value
    torch.save(blob, out)
    return out


def expected(path: Path, bad: int, first: str) -> str:
    count = len(torch.load(path, weights_only=True)["state_dict"])
    verb = "holds" if bad == 1 else "hold"
    return (f"{path}: {bad} of its {count} tensors {verb} NaN or infinite values (the first: "
            f"{first}); {ADVICE}")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")],
                         ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("name", [WEIGHT, BUFFER], ids=["weight", "bn-buffer"])
def test_one_nonfinite_value_is_refused_in_one_line(tmp_path, good, name, value):
    path = spoiled(good, tmp_path / "diverged.pt", {name: value})
    for load in (read_checkpoint, load_checkpoint):
        with pytest.raises(CheckpointError) as exc:
            load(path)
        assert str(exc.value) == expected(path, 1, name)


def test_the_count_and_the_first_tensor_in_file_order(tmp_path, good):
    # BUFFER comes before WEIGHT in the state_dict (the classifier is the last layer).
    path = spoiled(good, tmp_path / "two.pt", {WEIGHT: float("nan"), BUFFER: float("inf")})
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    assert str(exc.value) == expected(path, 2, BUFFER)


def test_nonfinite_ema_weights_of_a_last_pt_are_refused(tmp_path, good):
    blob = torch.load(good, weights_only=True)
    ema = {k: v.clone() for k, v in blob["state_dict"].items()}
    ema[WEIGHT].view(-1)[3] = float("nan")
    blob["train_state"] = {"ema": {"updates": 5, "decay": 0.999, "weights": ema}}
    torch.save(blob, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=rf"the first: train_state\.ema\.{WEIGHT}\)"):
        read_checkpoint(tmp_path / "last.pt")


def test_finite_checkpoints_load_even_where_a_sum_overflows(tmp_path, good):
    model, _ = load_checkpoint(good)
    weights = model.state_dict().values()
    assert all(torch.isfinite(t).all() for t in weights if t.is_floating_point())
    # fp16 shipping copy whose classifier sums past fp16's 65504: finite, so it loads.
    blob = torch.load(good, weights_only=True)
    blob["state_dict"] = {k: v.half() if v.is_floating_point() else v
                          for k, v in blob["state_dict"].items()}
    blob["state_dict"][WEIGHT].fill_(60000.0)
    assert not torch.isfinite(blob["state_dict"][WEIGHT].sum())
    torch.save(blob, tmp_path / "big.pt")
    assert read_checkpoint(tmp_path / "big.pt")["state_dict"][WEIGHT].dtype == torch.float16


@pytest.mark.parametrize("runtime", ["torch", "auto"])
def test_the_engine_refuses(tmp_path, good, runtime, monkeypatch):
    from canet_ros.inference import EngineError, SegmentationEngine

    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    path = spoiled(good, tmp_path / "diverged.pt", {WEIGHT: float("nan")})
    with pytest.raises(EngineError) as exc:
        SegmentationEngine(path, device="cpu", runtime=runtime, warmup=False)
    assert str(exc.value) == expected(path, 1, WEIGHT)


@pytest.mark.parametrize("command", [
    ["evaluate", "--checkpoint", "{ck}", "--data-root", "{data}", "--device", "cpu"],
    ["train", "--init-weights", "{ck}", "--data-root", "{data}", "--out-dir", "{tmp}/run",
     "--device", "cpu", "--workers", "0"],
    ["export", "--checkpoint", "{ck}", "--out", "{tmp}/out.onnx"],
], ids=["evaluate", "init-weights", "export"])
def test_commands_print_the_one_line(tmp_path, good, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    data = make_camvid_tree(tmp_path / "camvid", frames=2)
    path = spoiled(good, tmp_path / "diverged.pt", {BUFFER: float("-inf")})
    assert canet_main([a.format(ck=path, data=data, tmp=tmp_path) for a in command]) == 1
    out, err = capsys.readouterr()
    assert err == f"canet {command[0]}: error: {expected(path, 1, BUFFER)}\n"
    assert not (tmp_path / "run").exists() and not (tmp_path / "out.onnx").exists()


def test_resume_from_a_diverged_last_pt_is_refused(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    run = isolated / "run"
    assert canet_main(flags(root, run, "--max-steps-this-run", "1")) == 0
    last = run / "last.pt"
    blob = torch.load(last, weights_only=True)
    assert "train_state" in blob
    blob["state_dict"][WEIGHT].view(-1)[0] = float("nan")
    torch.save(blob, last)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert canet_main(["train", "--resume", str(last)]) == 1
    assert capsys.readouterr().err == f"canet train: error: {expected(last, 1, WEIGHT)}\n"
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before

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

"""The oldest torch setup.py allows (2.1, as on JetPack 6) behaves like the newest.

The torch installed here is newer, so the two places where torch 2.1 differs are
re-created as torch 2.1 has them:

* ``torch.onnx.export`` before 2.5 has no ``dynamo`` keyword (its TorchScript exporter
  is the only one); its parameters are listed below as torch 2.1.2 declares them.
* ``torch.load(weights_only=True)`` before 2.5 turns every RuntimeError of the load into
  ``pickle.UnpicklingError(<advice> + str(error))`` raised ``from None`` -- a file cut
  short as well as a refused object.
"""
import inspect
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from canet_ros.checkpoint import CheckpointError, load_checkpoint, read_checkpoint

# torch.onnx.export's parameters in torch 2.1.2 (torch/onnx/utils.py), in order.
TORCH21_EXPORT_PARAMS = (
    "model", "args", "f", "export_params", "verbose", "training", "input_names",
    "output_names", "operator_export_type", "opset_version", "do_constant_folding",
    "dynamic_axes", "keep_initializers_as_inputs", "custom_opsets",
    "export_modules_as_functions", "autograd_inlining")
# The text torch 2.1.2's torch.load puts before the wrapped RuntimeError's message.
TORCH21_UNSAFE = ("Weights only load failed. Re-running `torch.load` with `weights_only` set "
                  "to `False` will likely succeed, but it can result in arbitrary code "
                  "execution.Do it only if you get the file from a trusted source. "
                  "WeightsUnpickler error: ")
LEAKS = ("weights_only", "Re-running", "WeightsUnpickler", "EOF")


@pytest.fixture
def torch21_export(monkeypatch):
    """Replace torch.onnx.export by one with torch 2.1's signature; record each call."""
    real = torch.onnx.export
    signature = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          default=inspect.Parameter.empty if i < 3 else None)
        for i, name in enumerate(TORCH21_EXPORT_PARAMS)])
    calls = []
    # The TorchScript exporter, torch 2.1's only one (a newer torch is told to use it).
    exporter = {"dynamo": False} if "dynamo" in inspect.signature(real).parameters else {}

    def export(*args, **kwargs):
        signature.bind(*args, **kwargs)  # TypeError for a keyword torch 2.1 lacks, as there
        calls.append(kwargs)
        return real(*args, **kwargs, **exporter)

    export.__signature__ = signature
    monkeypatch.setattr(torch.onnx, "export", export)
    return calls


def test_canet_export_on_a_torch_without_the_dynamo_keyword(tmp_path, torch21_export):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from canet_ros.export_onnx import _Deployable, export_onnx_file

    out = export_onnx_file("default", tmp_path / "model.onnx", size=(64, 48), device="cpu")
    assert len(torch21_export) == 1 and "dynamo" not in torch21_export[0]
    image = np.random.default_rng(0).uniform(0, 255, (1, 3, 48, 64)).astype(np.float32)
    logits = ort.InferenceSession(str(out.path)).run(["logits"], {"image": image})[0]
    model, meta = load_checkpoint("default")
    with torch.no_grad():
        expected = _Deployable(model, meta["mean"], meta["std"], False).eval()(
            torch.from_numpy(image))[0].numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-3, rtol=1e-3)


def test_engine_graph_on_a_torch_without_the_dynamo_keyword(torch21_export):
    pytest.importorskip("onnxruntime")
    from canet_ros.inference.onnx_runtime import OnnxRunner, export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 1)).eval()
    data = export_onnx(model, (40, 24), use_cache=False)
    assert len(torch21_export) == 1 and "dynamo" not in torch21_export[0]
    x = np.random.default_rng(1).standard_normal((1, 3, 24, 40)).astype(np.float32)
    got = OnnxRunner(data, (40, 24), num_classes=4).forward_numpy(x)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_a_torch_with_the_dynamo_keyword_gets_the_torchscript_exporter(monkeypatch):
    # torch 2.9 made dynamo=True the default; that exporter needs onnxscript.
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        pytest.skip("this torch predates the dynamo keyword")
    from canet_ros.inference.onnx_runtime import _export_bytes

    real, seen = torch.onnx.export, []

    def export(*args, **kwargs):
        seen.append(kwargs.get("dynamo"))
        return real(*args, **kwargs)

    export.__signature__ = inspect.signature(real)
    monkeypatch.setattr(torch.onnx, "export", export)
    assert _export_bytes(nn.Conv2d(3, 2, 1).eval(), (32, 32))
    assert seen == [False]


def _torch21_load(real):
    """torch.load as torch 2.1 behaves for weights_only: RuntimeErrors come back wrapped."""
    def load(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        except RuntimeError as exc:
            raise pickle.UnpicklingError(TORCH21_UNSAFE + str(exc)) from None
    return load


def _legacy_file(path, blob):
    torch.save(blob, path, _use_new_zipfile_serialization=False)
    return path


def _message(path):
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    text = str(info.value)
    assert not any(leak in text for leak in LEAKS), text
    return text


def test_truncated_legacy_file_is_called_truncated_on_torch21(tmp_path, monkeypatch):
    legacy = _legacy_file(tmp_path / "legacy.pt", {"w": torch.zeros(1000)})
    cut = tmp_path / "cut_legacy.pt"
    cut.write_bytes(legacy.read_bytes()[:-100])  # inside the tensor bytes: torch's C++ EOF
    assert _message(cut) == f"{cut}: a damaged or truncated torch file, unreadable"
    monkeypatch.setattr(torch, "load", _torch21_load(torch.load))
    with pytest.raises(pickle.UnpicklingError, match="unexpected EOF"):
        torch.load(cut, weights_only=True)  # the stand-in wraps as torch 2.1 does
    assert _message(cut) == f"{cut}: a damaged or truncated torch file, unreadable"


def test_refused_objects_are_still_named_on_torch21(tmp_path, monkeypatch):
    whole = tmp_path / "whole.pt"
    torch.save(nn.Linear(2, 2), whole)

    def refuse(*args, **kwargs):  # what torch 2.1's weights-only unpickler raises for it
        raise RuntimeError("Unsupported class torch.nn.modules.linear.Linear")

    monkeypatch.setattr(torch, "load", _torch21_load(refuse))
    assert _message(whole) == (f"{whole}: a torch file holding pickled Python objects (such as "
                               f"a whole model), not a canet_ros checkpoint of tensors and "
                               f"metadata")


def test_opsets_past_what_torch21_writes_are_one_line(tmp_path, monkeypatch, capsys):
    from torch.onnx import _constants

    from canet_ros.cli import main
    from canet_ros.export_onnx import ExportError, _check_request

    # torch 2.1.2's TorchScript exporter stops at 17 (torch/onnx/_constants.py).
    monkeypatch.setattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17, raising=False)
    _check_request(None, False, "fp32", 17)
    with pytest.raises(ExportError, match=r"--opset 18: .* 11 to 17 with torch"):
        _check_request(None, False, "fp32", 18)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", "default", "--opset", "18", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--opset 18" in err[0] and "Traceback" not in err[0], err
    assert not out.exists()


def test_fp16_export_on_a_cpu_without_half_kernels(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    from canet_ros.export_onnx import ExportError, export_onnx_file

    real = torch.nn.functional.conv2d

    def conv2d(x, weight, *args, **kwargs):  # torch 2.1.2 on a CPU, for fp16
        if x.dtype == torch.half and x.device.type == "cpu":
            raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'Half'")
        return real(x, weight, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", conv2d)
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError) as info:
        export_onnx_file("default", out, size=(64, 48), precision="fp16", device="cpu")
    text = str(info.value)
    assert "fp16" in text and "slow_conv2d_cpu" in text and "--device cuda" in text, text
    assert not out.exists()
    # fp32 on the same CPU needs no half kernel and still exports.
    assert export_onnx_file("default", out, size=(64, 48), device="cpu").nbytes > 0

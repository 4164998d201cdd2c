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

"""``canet export --format onnx``: the file runs in ONNX Runtime and labels like torch.

The torch reference here normalises frames itself, ``(x / 255 - mean) / std``, from the
checkpoint's metadata; the exported graph must do the same inside.
"""
import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from canet_ros.checkpoint import load_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli import main
from canet_ros.export_onnx import MIN_OPSET, _highest_opset

onnx = pytest.importorskip("onnx", reason="canet export needs onnx (pip install onnx)")
ort = pytest.importorskip("onnxruntime", reason="the check runs the file in onnxruntime")
cv2 = pytest.importorskip("cv2")

CAMVID_ROOT = Path(os.environ.get("CANET_CAMVID_ROOT")
                   or Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid")
# A pixel whose two best torch logits are closer than this may flip between runtimes.
TIE = 1e-4
# fp16 against torch fp32, ONNX Runtime CPU, 11 CamVid val frames at 240x180: 99.986 %
# of pixels agree (worst frame 99.970 %); see docs/export.md.
FP16_AGREEMENT = 0.999


@pytest.fixture(scope="module")
def frames():
    """Two CamVid validation frames, RGB uint8 at their native 480x360."""
    names = sorted((CAMVID_ROOT / "val").glob("*.png"))
    if len(names) < 2:
        pytest.skip(f"no CamVid val frames under {CAMVID_ROOT} (set CANET_CAMVID_ROOT)")
    picks = (names[0], names[len(names) // 2])
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in picks])


@pytest.fixture(scope="module")
def reference():
    import torch

    model, meta = load_checkpoint("default")
    model.eval()
    mean = torch.tensor(meta["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(meta["std"]).view(1, 3, 1, 1)

    def logits(batch):
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return model((x / 255 - mean) / std).numpy()
    return logits


def export(tmp_path_factory, *args):
    """Run ``canet export ... --json``; returns the file and the printed JSON."""
    out = tmp_path_factory.mktemp("export") / "canet.onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["export", "--checkpoint", "default", "--format", "onnx", "--out",
                     str(out), "--json", *args])
    assert code == 0
    return out, json.loads(stdout.getvalue())


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return export(tmp_path_factory)


def run_onnx(path, batch):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
    logits, labels = session.run(["logits", "labels"], {"image": x})
    return logits, labels


def assert_equal_up_to_ties(labels, ref_logits):
    ref = ref_logits.argmax(1)
    top2 = np.sort(ref_logits, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    differ = labels != ref
    assert (margin[differ] < TIE).all(), f"{differ.sum()} pixels differ beyond ties"


def resized(frames, width, height):
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR)
                     for f in frames])


def test_fp32_labels_equal_torch_on_camvid(fp32, frames, reference):
    path, result = fp32
    ref = reference(frames)
    for i in range(len(frames)):  # the fixed graph has batch 1
        logits, labels = run_onnx(path, frames[i:i + 1])
        assert labels.dtype == np.int32 and labels.shape == (1, 360, 480)
        assert np.abs(logits - ref[i:i + 1]).max() < 1e-3
        assert_equal_up_to_ties(labels, ref[i:i + 1])
        np.testing.assert_array_equal(labels, logits.argmax(1))


def declared(model) -> dict:
    """{name: (dtype, shape)} of the graph's input and outputs, as the graph declares them."""
    out = {}
    for v in (*model.graph.input, *model.graph.output):
        t = v.type.tensor_type
        out[v.name] = (onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                       [d.dim_value if d.HasField("dim_value") else d.dim_param
                        for d in t.shape.dim])
    return out


def docs_contract(dynamic: bool, width: int, height: int) -> dict:
    """{name: (dtype, shape)} of an fp32 export, read from docs/export.md's table."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    table = text.split("## Inputs and outputs", 1)[1].split("\n\n", 2)[1]
    values = {"C": len(CAMVID.names), "H": height, "W": width}
    out = {}
    for row in table.splitlines()[2:]:
        name, dtype, fixed, free = (c.strip() for c in row.strip("|").split("|")[:4])
        dims = (free if dynamic else fixed).split(" x ")
        out[name.split("`")[1]] = (dtype.split()[0], [
            int(d) if d.isdigit() else values.get(d, d) for d in dims])
    return out


def test_metadata_describes_the_graph(fp32):
    path, result = fp32
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["class_names"]) == list(CAMVID.names)
    assert json.loads(props["palette"]) == [list(c) for c in CAMVID.colors]
    assert props["backbone"] == "mobilenetv2" and json.loads(props["num_classes"]) == 11
    assert props["source_checkpoint"] == "canet_mobilenetv2_camvid.pt"  # no machine paths
    image, outputs = json.loads(props["input"]), json.loads(props["outputs"])
    assert result["input"] == image and result["outputs"] == outputs
    assert image["channels"] == "RGB" and image["layout"] == "NCHW" and image["range"] == [0, 255]

    graph = declared(model)
    claims = {m["name"]: (m["dtype"], m["shape"]) for m in (image, *outputs)}
    assert graph == claims == {"image": ("float32", [1, 3, 360, 480]),
                               "logits": ("float32", [1, 11, 360, 480]),
                               "labels": ("int32", [1, 360, 480])}
    assert model.opset_import[0].version == 17


def test_dynamic_graph_takes_other_sizes_and_batches(tmp_path_factory, frames, reference):
    path, result = export(tmp_path_factory, "--dynamic", "--opset", "13")
    assert result["input"]["shape"] == ["batch", 3, "height", "width"]
    assert onnx.load(str(path)).opset_import[0].version == 13
    # Traced at 480x360; odd sizes need the decoder's crop to follow the input's shape.
    for width, height in ((320, 256), (250, 170)):
        batch = resized(frames, width, height)
        logits, labels = run_onnx(path, batch)
        assert labels.shape == (len(frames), height, width)
        assert_equal_up_to_ties(labels, reference(batch))


@pytest.mark.parametrize("opset", [MIN_OPSET, _highest_opset()])
@pytest.mark.parametrize("size", [None, (64, 48)], ids=["dynamic", "fixed"])
def test_the_graph_declares_the_documented_shapes(tmp_path_factory, opset, size):
    # What tools that size buffers from the graph (Triton, TensorRT) read: every
    # dimension as docs/export.md states it, the class count included.
    args = ["--dynamic"] if size is None else ["--width", str(size[0]), "--height", str(size[1])]
    path, result = export(tmp_path_factory, "--opset", str(opset), *args)
    model = onnx.load(str(path))
    want = docs_contract(size is None, *(size or (0, 0)))
    assert declared(model) == want
    assert {m["name"]: (m["dtype"], m["shape"]) for m in (result["input"], *result["outputs"])} \
        == want
    # The graph computes what it declares: strict inference, constants propagated.
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    assert declared(inferred) == want
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert {v.name: v.shape for v in (*session.get_inputs(), *session.get_outputs())} \
        == {name: shape for name, (_, shape) in want.items()}
    batch, (width, height) = (2, (70, 40)) if size is None else (1, size)
    logits, labels = session.run(None, {"image": np.zeros((batch, 3, height, width), np.float32)})
    assert logits.shape == (batch, 11, height, width) and labels.shape == (batch, height, width)


def _cpu_runs_half_convs() -> bool:
    try:  # torch before ~2.2 has no fp16 conv on the CPU; export then refuses fp16 there
        torch.nn.functional.conv2d(torch.zeros(1, 1, 3, 3, dtype=torch.half),
                                   torch.zeros(1, 1, 1, 1, dtype=torch.half))
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _cpu_runs_half_convs(), reason="this torch has no fp16 conv on the CPU")
def test_fp16_agrees_with_torch_fp32(tmp_path_factory, frames, reference):
    path, result = export(tmp_path_factory, "--precision", "fp16",
                          "--width", "240", "--height", "180")
    assert result["outputs"][0]["dtype"] == "float16"
    assert "where the fp16 logits tie" in result["outputs"][1]["meaning"]
    batch = resized(frames, 240, 180)
    ref = reference(batch).argmax(1)
    for i in range(len(batch)):
        logits, labels = run_onnx(path, batch[i:i + 1])
        assert logits.dtype == np.float16
        # docs/export.md: the argmax of the returned logits, or where those tie any tied
        # class; either way a class whose returned score is the highest.
        score = np.take_along_axis(logits, labels[:, None].astype(np.int64), 1)[:, 0]
        assert (score == logits.max(1)).all()
        agreement = float((labels == ref[i:i + 1]).mean())
        print(f"fp16 frame {i}: {100 * agreement:.3f} % of pixels as torch fp32")
        assert agreement >= FP16_AGREEMENT


@pytest.mark.parametrize("args,message", [
    (["--height", "64"], "--height and --width together"),
    (["--dynamic", "--height", "64", "--width", "64"], "--dynamic"),
    (["--height", "16", "--width", "64"], "at least 32"),
    (["--opset", "9"], "opsets 11 to "),  # the ceiling is the installed torch's (17 on 2.1)
    (["--checkpoint", "NOFILE"], "no such checkpoint file"),
], ids=["height-alone", "dynamic-and-size", "too-small", "opset", "missing-checkpoint"])
def test_bad_requests_are_one_line_errors(tmp_path, capsys, args, message):
    out = tmp_path / "old.onnx"
    out.write_bytes(b"earlier export")
    args = [str(tmp_path / "none.pt") if a == "NOFILE" else a for a in args]
    assert main(["export", "--out", str(out), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # nothing announced before the error
    assert err[0].startswith("canet export: error: ") and message in err[0]
    assert out.read_bytes() == b"earlier export"  # nothing overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.onnx"]  # no temp files


def test_an_interrupted_export_leaves_the_earlier_file(tmp_path, capsys, monkeypatch):
    from canet_ros import export_onnx

    out = tmp_path / "old.onnx"
    out.write_bytes(b"earlier export")

    def interrupted(data, metadata):  # Ctrl-C once the graph is traced, before the write
        raise KeyboardInterrupt

    monkeypatch.setattr(export_onnx, "_annotate", interrupted)
    assert main(["export", "--out", str(out)]) == 130
    assert out.read_bytes() == b"earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.onnx"]


def test_cuda_without_cuda_is_an_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["export", "--out", str(tmp_path / "x.onnx"), "--device", "cuda"]) == 1
    assert "no CUDA device" in capsys.readouterr().err


def test_out_must_be_a_file_name(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path)]) == 1
    assert "a folder" in capsys.readouterr().err


def test_zero_height_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "--out", str(tmp_path / "x.onnx"), "--height", "0", "--width", "64"])
    assert exc.value.code == 2


def test_the_docs_onnx_runtime_recipe_gives_the_node_labels(fp32, frames, tmp_path):
    from canet_ros.inference import SegmentationEngine

    text = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    section = text.split("## Running it with ONNX Runtime", 1)[1]
    recipe = section.split("```python\n", 1)[1].split("```", 1)[0]
    engine = SegmentationEngine("default", device="cpu", precision="fp32")
    for size in ((641, 479), (333, 247), (480, 360)):  # resized by the recipe, and not
        frame = cv2.resize(frames[0][..., ::-1], size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(tmp_path / "frame.png"), frame)
        names: dict = {}
        exec(recipe.replace('"canet.onnx"', repr(str(fp32[0])))  # noqa: S102 -- the docs' code
             .replace('"frame.png"', repr(str(tmp_path / "frame.png"))), names)
        node = engine.infer(frame, "bgr").labels
        assert names["frame_labels"].shape == node.shape
        # Float rounding may tip a pixel whose two best scores tie.
        assert int((names["frame_labels"] != node).sum()) <= 2, size

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

"""int8 keeps the raw-pixel convolutions in float whatever the backbone calls them.

The layers were once listed by their MobileNetV2 names: in a ResNet export the context
branch's first convolution was quantized, unnoticed, and the spatial branch's first one
read a quantized input with it.
"""
import copy
import re

import numpy as np
import pytest

from canet_ros.inference import EngineError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
SIZE = (96, 64)  # (W, H): small, a multiple of 32 for both backbones
# The graph input's first convolutions, named after the modules that make them: CANet's
# spatial branch, then torchvision's ResNet stem (conv1) and MobileNetV2 stem (features.0).
PIXEL_CONVS = {
    "mobilenetv2": {"/spatial/spatial.0/spatial.0.0/Conv", "/context/context.0/context.0.0/Conv"},
    "resnet18": {"/spatial/spatial.0/spatial.0.0/Conv", "/context/conv1/Conv"},
}
# CANet's head, by its modules' names (blocks.py): the shared FC stack is called twice
# (avg- and max-pooled vectors), and the exporter names the second call's layers _1.
HEAD = {"/classifier/Conv", "/fca/spatial_att/conv/Conv",
        "/fca/channel_att/fc/fc.0/MatMul", "/fca/channel_att/fc/fc.2/MatMul",
        "/fca/channel_att/fc/fc.0_1/MatMul", "/fca/channel_att/fc/fc.2_1/MatMul"}


def export(tmp_path_factory, backbone):
    """Save an untrained checkpoint and export it as the engine does (load, then export)."""
    import torch

    from canet_ros.checkpoint import build_metadata, load_checkpoint, save_checkpoint
    from canet_ros.classes import generic_class_set
    from canet_ros.inference.onnx_runtime import export_onnx
    from canet_ros.models import build_canet

    torch.manual_seed(0)
    classes = generic_class_set(5, 5)
    meta = build_metadata(backbone, classes, input_size=SIZE)
    folder = tmp_path_factory.mktemp(backbone)
    net = build_canet(backbone, 5).eval()
    with torch.no_grad():  # trained-like BatchNorms: fresh ones fold to equal zero biases,
        for module in net.modules():  # which the exporter stores once, shared by many convs
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2)
                module.bias.normal_(0, 0.1)
    path = save_checkpoint(folder / f"{backbone}.pt", net, meta)
    model, meta = load_checkpoint(path)
    model.eval()
    graph = folder / "fp32.onnx"
    graph.write_bytes(export_onnx(model, tuple(meta["input_size"]), use_cache=False))
    return graph


@pytest.fixture(scope="module", params=sorted(PIXEL_CONVS))
def exported(request, tmp_path_factory):
    return request.param, export(tmp_path_factory, request.param)


def test_every_convolution_on_the_input_is_kept_in_float(exported):
    from canet_ros.inference.quantize import float_nodes

    backbone, path = exported
    graph = onnx.load(str(path)).graph
    on_input = {node.name for node in graph.node
                if node.op_type == "Conv" and node.input[0] == graph.input[0].name}
    assert on_input == PIXEL_CONVS[backbone]  # the export reads pixels in these two only
    kept = float_nodes(graph)
    assert len(kept) == len(set(kept))
    # The head (classifier, FCA attention) is named alike for every backbone, and found.
    assert set(kept) == on_input | HEAD


@pytest.mark.parametrize("old, new, message", [
    ("/fca/channel_att/fc/fc.2_1/MatMul", "/other/MatMul",
     "3 MatMul/Gemm under /fca/channel_att/fc/, not 4"),
    ("/classifier/Conv", "/head/Conv", "0 Conv under /classifier/, not 1"),
    ("/spatial/spatial.0/spatial.0.0/Conv", "/stem/Conv",
     "no convolution under /spatial/ reads the input"),
])
def test_a_layer_missing_from_a_canet_graph_is_an_error(exported, old, new, message):
    from canet_ros.inference.quantize import float_nodes

    _, path = exported
    renamed = copy.deepcopy(onnx.load(str(path)).graph)
    for node in renamed.node:
        if node.name == old:
            node.name = new
    with pytest.raises(EngineError, match=re.escape(message)):
        float_nodes(renamed)


def test_convolutions_after_input_normalisation_count_as_reading_pixels():
    """Sub/Div by constants before the first Conv: still raw pixels; later Convs are not."""
    from onnx import TensorProto, helper, numpy_helper

    from canet_ros.inference.quantize import float_nodes

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    w2 = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w2")
    mean = numpy_helper.from_array(np.full((1, 3, 1, 1), 0.5, np.float32), "mean")
    nodes = [helper.make_node("Sub", ["input", "mean"], ["centred"], name="sub"),
             helper.make_node("Div", ["centred", "mean"], ["scaled"], name="div"),
             helper.make_node("Conv", ["scaled", "w"], ["a"], name="after_norm"),
             helper.make_node("Conv", ["input", "w"], ["b"], name="direct"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["c"], name="deeper"),
             helper.make_node("Add", ["b", "c"], ["out"], name="add")]
    graph = helper.make_graph(
        nodes, "norm", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 4, 4])], [w, w2, mean])
    assert float_nodes(graph) == ["after_norm", "direct"]  # no CANet head: nothing else


def test_resnet18_int8_graph_feeds_its_pixel_convolutions_float(tmp_path_factory):
    from canet_ros.inference.quantize import quantize_graph

    path = export(tmp_path_factory, "resnet18")
    rng = np.random.default_rng(0)
    width, height = SIZE
    inputs = [rng.normal(size=(1, 3, height, width)).astype(np.float32) for _ in range(2)]
    q = onnx.load_from_string(quantize_graph(path, inputs)).graph
    producer = {out: node for node in q.node for out in node.output}

    def dequantized(tensor):
        return getattr(producer.get(tensor), "op_type", "") == "DequantizeLinear"

    convs = {node.name: node for node in q.node if node.op_type == "Conv"}
    for name in PIXEL_CONVS["resnet18"]:
        assert convs[name].input[0] == q.input[0].name, name  # float pixels, no Q/DQ between
    # The head: the FC stack's second call is fused into a Gemm by pre-processing.
    fc = [n for n in q.node if n.op_type in ("MatMul", "Gemm")
          and n.name.startswith("/fca/channel_att/fc/")]
    assert len(fc) == 4 and "Gemm" in {n.op_type for n in fc}
    kept = [convs[name] for name in PIXEL_CONVS["resnet18"]] + fc + [
        convs["/classifier/Conv"], convs["/fca/spatial_att/conv/Conv"]]
    for node in kept:  # float weights and bias (the head reads a dequantized activation)
        assert not any(dequantized(t) for t in node.input[1:]), node.name
    # The rest really is int8: every other convolution reads a dequantized tensor.
    others = [n for n in convs.values() if n not in kept]
    assert others and all(dequantized(n.input[0]) and dequantized(n.input[1]) for n in others)

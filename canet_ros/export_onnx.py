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

"""Export a CANet checkpoint as a self-contained ONNX file for TensorRT and other runtimes.

The graph takes what a camera driver gives after one transpose -- RGB pixel values
0..255 as float32, NCHW -- and applies the checkpoint's normalisation itself, so a
deployment needs no mean/std constants. It returns the logits and, for convenience, the
per-pixel class ids (argmax over classes, first class on ties, as ``torch.argmax``;
for fp16 exports see docs/export.md).
What the file expects and returns, its class names and palette are written into the
file's metadata (``metadata_props``) and described in docs/export.md.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import __version__
from .atomic_write import write_atomic
from .checkpoint import load_checkpoint, resolve_checkpoint
from .errors import CanetError
from .inference.onnx_runtime import quiet_warnings, torchscript_export_options

__all__ = ["DEFAULT_OPSET", "ExportError", "INPUT_NAME", "LABELS_NAME", "LOGITS_NAME",
           "MAX_OPSET", "MIN_OPSET", "OnnxExport", "export_onnx_file", "read_metadata"]

INPUT_NAME = "image"
LOGITS_NAME = "logits"
LABELS_NAME = "labels"
# 17 is what TensorRT 8.5 (JetPack 5) and later parse; 11 is the first opset whose
# Resize matches torch's bilinear (align_corners=False).
DEFAULT_OPSET = 17
MIN_OPSET = 11
MAX_OPSET = 20
# The decoder crops its transposed convolutions to the skip feature's size (models/
# blocks.py), so one dynamic graph is exact at every size the network takes.
MIN_SIDE = 32

PathLike = Union[str, os.PathLike]


class ExportError(CanetError):
    """An export that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class OnnxExport:
    """What was written: the file, its size and the metadata stored in it."""

    path: Path
    nbytes: int
    metadata: Dict[str, str]


def _check_request(size: Optional[Tuple[int, int]], dynamic: bool, precision: str,
                   opset: int) -> None:
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"--precision {precision!r}: choose fp32 or fp16")
    highest = _highest_opset()
    if not MIN_OPSET <= opset <= highest:
        with_torch = f" with torch {torch.__version__}" if highest < MAX_OPSET else ""
        raise ExportError(f"--opset {opset}: this exporter writes opsets {MIN_OPSET} to "
                          f"{highest}{with_torch}")
    if dynamic and size is not None:
        raise ExportError("--dynamic exports any input size; give it without --height/--width")
    if size is not None and min(size) < MIN_SIDE:
        raise ExportError(f"--width {size[0]} --height {size[1]}: both must be at least "
                          f"{MIN_SIDE} (the network's coarsest stage is 1/32 of the input)")


def _highest_opset() -> int:
    """MAX_OPSET, or less where the installed torch's TorchScript exporter stops earlier.

    torch 2.1 writes up to 17: asked for more it only warns and emits nodes the ONNX
    checker rejects.
    """
    from torch.onnx import _constants

    return min(MAX_OPSET, int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
                                      MAX_OPSET)))


def _trace_size(size: Optional[Tuple[int, int]], dynamic: bool,
                train_size: Optional[Sequence[int]]) -> Tuple[int, int]:
    """(W, H) to trace at: the asked size, else the training input size."""
    if size is not None:
        return size
    width, height = (int(v) for v in (train_size or (1024, 512)))
    return max(width, MIN_SIDE), max(height, MIN_SIDE)


class _Deployable(nn.Module):
    """The network behind an affine pixel normalisation, returning logits and labels."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 half: bool):
        super().__init__()
        self.half_net = half
        self.net = net.half() if half else net.float()
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add, computed in fp32 before any cast.
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", -mean_t / std_t)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = image * self.scale + self.shift
        logits = self.net(x.half() if self.half_net else x)
        return logits, logits.argmax(1).to(torch.int32)


def _io_metadata(size: Tuple[int, int], dynamic: bool, num_classes: int,
                 precision: str) -> Dict[str, Any]:
    width, height = size
    dims: List[Any] = (["batch", 3, "height", "width"] if dynamic else [1, 3, height, width])
    out_dims = [dims[0], num_classes, dims[2], dims[3]]
    float_out = "float16" if precision == "fp16" else "float32"
    image = {"name": INPUT_NAME, "dtype": "float32", "shape": dims, "layout": "NCHW",
             "channels": "RGB", "range": [0, 255],
             "normalisation": "inside the graph: (x / 255 - mean) / std"}
    if dynamic:
        image["size_rule"] = f"height and width: any, at least {MIN_SIDE}"
    logits = {"name": LOGITS_NAME, "dtype": float_out, "shape": out_dims,
              "meaning": "class scores before softmax, at the input size"}
    meaning = "class id per pixel (argmax of logits, first class on ties)"
    if precision == "fp16":  # runtimes that compute fp16 in fp32 take the argmax unrounded
        meaning = ("class id per pixel (argmax of logits, first class on ties; where the fp16 "
                   "logits tie, any of the tied classes)")
    labels = {"name": LABELS_NAME, "dtype": "int32", "shape": [dims[0], dims[2], dims[3]],
              "meaning": meaning}
    return {"input": image, "outputs": [logits, labels]}


def _metadata(meta: Mapping[str, Any], source: str, size: Tuple[int, int], dynamic: bool,
              precision: str, opset: int) -> Dict[str, str]:
    io_meta = _io_metadata(size, dynamic, int(meta["num_classes"]), precision)
    values: Dict[str, Any] = {
        "canet_ros_version": __version__,
        "backbone": meta["backbone"],
        "num_classes": int(meta["num_classes"]),
        "class_names": list(meta["class_names"]),
        "palette": [[int(v) for v in c] for c in meta["palette"]],
        "mean": [float(v) for v in meta["mean"]],
        "std": [float(v) for v in meta["std"]],
        "train_input_size": meta.get("input_size"),
        "precision": precision,
        "opset": opset,
        "source_checkpoint": source,
        **io_meta,
    }
    # metadata_props holds strings; lists and objects are stored as JSON.
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _to_onnx(net: nn.Module, size: Tuple[int, int], dynamic: bool, opset: int) -> bytes:
    width, height = size
    device = next(net.parameters()).device
    example = torch.full((1, 3, height, width), 128.0, device=device)
    axes = None
    if dynamic:
        axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                LOGITS_NAME: {0: "batch", 2: "height", 3: "width"},
                LABELS_NAME: {0: "batch", 1: "height", 2: "width"}}
    buffer = io.BytesIO()
    # The TorchScript-based exporter warns that it is deprecated; it is the one that needs
    # no extra packages and handles this model (as the ONNX Runtime engine does). One export
    # at a time in a process (quiet_warnings holds EXPORT_LOCK): torch's exporter state is
    # process-wide.
    with quiet_warnings(), torch.no_grad():
        torch.onnx.export(net, (example,), buffer, input_names=[INPUT_NAME],
                          output_names=[LOGITS_NAME, LABELS_NAME], opset_version=opset,
                          dynamic_axes=axes, do_constant_folding=True,
                          **torchscript_export_options())
    return buffer.getvalue()


def _explain_missing_half_kernel(exc: RuntimeError, precision: str, device: str) -> None:
    """Raise ExportError for an fp16 trace on a CPU whose torch lacks a half kernel.

    Tracing runs the network once; older torch (2.1) has no half-precision CPU
    convolution and says '"slow_conv2d_cpu" not implemented for 'Half''.
    """
    text = str(exc)
    if precision != "fp16" or not device.startswith("cpu") or "for 'Half'" not in text:
        return
    kernel = text.split(" not implemented", 1)[0].strip('"')
    raise ExportError(f"--precision fp16 on the CPU: torch {torch.__version__} has no "
                      f"half-precision CPU kernel for {kernel}, which tracing runs; export "
                      f"fp16 with --device cuda, or with a newer torch") from exc


def _annotate(data: bytes, metadata: Mapping[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    model.producer_name = "canet_ros"
    model.producer_version = __version__
    model.doc_string = ("CANet semantic segmentation exported by canet_ros; input and "
                        "outputs are described in the metadata keys 'input' and 'outputs'.")
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    docs = {INPUT_NAME: json.loads(metadata["input"]),
            **{o["name"]: o for o in json.loads(metadata["outputs"])}}
    for value_info in (*model.graph.input, *model.graph.output):
        if value_info.name in docs:
            value_info.doc_string = json.dumps(docs[value_info.name])
            _declare_shape(value_info, docs[value_info.name]["shape"])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _declare_shape(value_info: Any, shape: Sequence[Union[int, str]]) -> None:
    """Declare the documented shape (numbers fixed, names free) on a graph input or output.

    torch declares a dimension it cannot tie to an input axis under a name of its own:
    a dynamic graph's logits came out as batch x 'Resizelogits_dim_1' x height x width,
    so tools that size buffers from the graph (Triton) did not learn the class count.
    """
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise RuntimeError(f"{value_info.name}: the graph has {len(dims)} dimensions, "
                           f"the description {len(shape)}")
    for dim, value in zip(dims, shape, strict=True):
        if isinstance(value, int):
            dim.dim_value = value
        else:
            dim.dim_param = value


def export_onnx_file(checkpoint: Optional[PathLike], out: PathLike, *,
                     size: Optional[Tuple[int, int]] = None, dynamic: bool = False,
                     precision: str = "fp32", opset: int = DEFAULT_OPSET,
                     device: str = "auto") -> OnnxExport:
    """Export ``checkpoint`` ('default' or None = the bundled model) to ``out``.

    ``size`` is the fixed input (width, height); None means the checkpoint's training
    size. ``dynamic`` leaves batch, height and width free. ``device`` is where the graph
    is traced ("auto" = CUDA if present): the file is the same, but fp16 tracing on a
    CPU is slow (one to two minutes at 480x360).
    """
    _check_request(size, dynamic, precision, opset)
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out}: a folder; --out needs a file name such as model.onnx")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError("canet export needs the onnx package: pip install onnx") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExportError(f"--device {device}: this torch has no CUDA device; use cpu or auto")
    model, meta = load_checkpoint(checkpoint)
    trace_size = _trace_size(size, dynamic, meta.get("input_size"))
    net = _Deployable(model, meta["mean"], meta["std"], precision == "fp16").eval().to(device)
    try:
        data = _to_onnx(net, trace_size, dynamic, opset)
    except RuntimeError as exc:
        _explain_missing_half_kernel(exc, precision, device)
        raise
    metadata = _metadata(meta, resolve_checkpoint(checkpoint).name, trace_size, dynamic,
                         precision, opset)
    data = _annotate(data, metadata)
    write_atomic(out, lambda fh: fh.write(data))
    return OnnxExport(out, len(data), metadata)


def read_metadata(path: PathLike) -> Dict[str, Any]:
    """Return the canet_ros metadata of an exported file, JSON values decoded."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    result: Dict[str, Any] = {}
    for entry in model.metadata_props:
        try:
            result[entry.key] = json.loads(entry.value)
        except ValueError:
            result[entry.key] = entry.value
    return result

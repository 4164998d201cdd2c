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

"""int8 post-training static quantization of the cached ONNX export, made once.

ONNX Runtime's quantization tools write a QDQ graph (per-channel int8 weights, uint8
activations, min/max calibration on frames); OpenVINO runs it in int8 on VNNI/AMX
(ONNX Runtime can too, slower: docs/performance.md). The file sits next to the fp32
export and is named by a hash of that export, the calibration frames' files, these
settings and the quantizer's version: the same inputs give the same file, made once.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import CalibrationSource, calibration_source
from .onnx_runtime import _write_atomic, cache_dir
from .results import EngineError

__all__ = ["HEAD_FLOAT", "SETTINGS", "cached_int8", "float_nodes", "int8_graph", "int8_path",
           "quantize_graph"]

log = logging.getLogger("canet_ros.inference")
# Part of the file's name: change it whenever the quantization below changes (v2: the
# layers are found in the graph, so ResNet exports keep their pixel convolutions in float
# too, and every export the FC layer that pre-processing fuses into a Gemm).
SETTINGS = "qdq-u8s8-perchannel-minmax-v2"
# Small, accuracy-sensitive layers left in float: the convolutions that read raw pixels
# (found in the graph: :func:`float_nodes`), the classifier (its rounding moves argmax
# ties) and the FCA attention's pooled vectors; together ~2 % of the MACs. Measured:
# labels equal to fp32 on 99.47 % of CamVid val pixels with only the head in float,
# 99.55 % with the pixel convolutions too (docs/performance.md; MobileNetV2, measured
# while the fused Gemm below was still quantized by mistake). The head is found by the
# CANet module that makes it, the same for every backbone, not by node name: the
# quantizer's pre-processing renames what it fuses (the shared FC stack's second call
# becomes .../fc.2_1/MatMul/MatMulAddFusion, a Gemm). (scope, op types, count): a CANet
# graph without exactly that many is an error, never a layer quietly quantized.
HEAD_FLOAT = (("/classifier/", ("Conv",), 1), ("/fca/spatial_att/", ("Conv",), 1),
              ("/fca/channel_att/fc/", ("MatMul", "Gemm"), 4))  # 2 Linear x (avg, max)
# CANet's top-level modules: a graph with none of them is no CANet export (a test graph).
_CANET_SCOPES = ("/spatial/", "/context/", "/fca/", "/classifier/")
# What an export may do to the pixels before the first convolutions (normalising with
# constants) without them ceasing to be raw pixels.
_PIXEL_OPS = frozenset({"Sub", "Div", "Mul", "Add", "Cast", "Identity"})


def _pixel_convs(graph: Any) -> list[str]:
    """Names of the Conv nodes whose input is the graph input, through _PIXEL_OPS only."""
    weights = {t.name for t in graph.initializer}
    constants = weights | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in set(node.input):
            consumers.setdefault(name, []).append(node)
    frontier = [t.name for t in graph.input if t.name not in weights]
    seen, found = set(frontier), []
    while frontier:
        tensor = frontier.pop()
        for node in consumers.get(tensor, ()):
            if node.op_type == "Conv" and node.input[0] == tensor:
                found.append(node.name)
            elif node.op_type in _PIXEL_OPS and all(t == tensor or t in constants
                                                    for t in node.input):
                fresh = [o for o in node.output if o not in seen]
                seen.update(fresh)
                frontier.extend(fresh)
    order = {node.name: i for i, node in enumerate(graph.node)}
    return sorted(set(found), key=order.__getitem__)


def float_nodes(graph: Any) -> list[str]:
    """Names of the nodes of an fp32 ONNX ``graph`` that its int8 graph keeps in float.

    The convolutions reading the pixels are found by structure, whatever the backbone
    calls them; in a CANet graph both branches must have one and each :data:`HEAD_FLOAT`
    entry must match its count, else :class:`EngineError`.
    """
    pixel = _pixel_convs(graph)
    if not pixel or not all(pixel):
        raise EngineError(f"int8: no named convolution reads the network input ({pixel})")
    names = {node.name for node in graph.node}
    if not any(name.startswith(_CANET_SCOPES) for name in names):
        return pixel
    head, problems = [], []
    for scope, ops, count in HEAD_FLOAT:
        found = [n.name for n in graph.node if n.op_type in ops and n.name.startswith(scope)]
        head += found
        if len(found) != count:
            problems.append(f"{len(found)} {'/'.join(ops)} under {scope}, not {count}")
    problems += [f"no convolution under {scope} reads the input" for scope in ("/spatial/",
                 "/context/") if not any(name.startswith(scope) for name in pixel)]
    if problems:
        raise EngineError("int8: cannot choose the layers kept in float in this CANet graph "
                          f"({'; '.join(problems)}): an exporter that names nodes differently?")
    return pixel + [name for name in head if name not in pixel]


def _name_nodes(graph: Any) -> None:
    """Give unnamed nodes unique names: the quantizer excludes nodes by name."""
    taken = {node.name for node in graph.node}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def int8_path(fp32: Path, source: CalibrationSource) -> Path:
    """Where the int8 graph of the export ``fp32`` calibrated on ``source`` is kept."""
    from ..versions import module_version  # not importing onnxruntime: start-up time

    key = _digest(fp32.read_bytes(), source.digest().encode(), SETTINGS.encode(),
                  (module_version("onnxruntime") or "unknown").encode())
    return fp32.with_name(f"{fp32.stem}_int8_{key}.onnx")


def quantize_graph(fp32: Path, inputs: Sequence[np.ndarray]) -> bytes:
    """Return the QDQ int8 graph of ``fp32`` calibrated on network ``inputs`` (1,3,H,W float32)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{"input": x} for x in inputs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    quiet = logging.root.level
    # The quantizer logs every adjusted scale and shape note on the root logger: keep a
    # node's log readable.
    logging.root.setLevel(max(quiet, logging.ERROR))
    try:
        return _quantize(fp32, Reader())
    finally:
        logging.root.setLevel(quiet)


def _quantize(fp32: Path, reader: Any) -> bytes:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="canet_int8_") as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        # Shape inference first, as the quantizer asks; no symbolic shapes (all fixed).
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        # Chosen on the graph the quantizer reads: pre-processing may rewrite nodes.
        model = onnx.load(str(prepared))
        _name_nodes(model.graph)
        keep = float_nodes(model.graph)
        onnx.save(model, str(prepared))
        quantize_static(str(prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=keep)
        return out.read_bytes()


def _stored_path(fp32: bytes) -> Path | None:
    """Where :func:`int8_graph` keeps a graph given as bytes, named by its hash (None: no cache)."""
    root = cache_dir()
    return None if root is None else root / "onnx" / f"canet_{_digest(fp32)}.onnx"


def cached_int8(fp32: Path | bytes, source: CalibrationSource | None = None) -> Path | None:
    """Return the int8 graph made earlier for this export and calibration frames, or None.

    Never calibrates: this is how ``auto`` tells a start that is ready for int8 from one
    that would first spend ~20 s (minutes on a loaded CPU) calibrating.
    """
    try:
        source = source or calibration_source()
        if isinstance(fp32, bytes):
            fp32 = _stored_path(fp32)
        target = int8_path(fp32, source) if fp32 is not None and fp32.is_file() else None
    except (EngineError, OSError):  # frames or export unreadable: nothing is ready
        return None
    return target if target is not None and target.is_file() else None


def int8_graph(fp32: Path | bytes, preprocess: Callable[[np.ndarray], np.ndarray],
               source: CalibrationSource | None = None) -> Path | bytes:
    """Return the cached int8 graph of an fp32 export, made (and stored beside it) if missing.

    ``preprocess`` turns an HxWx3 RGB frame into the network input; a graph given as
    bytes (a model without a checkpoint file) is first stored in the cache by its hash.
    Where the cache cannot be written, the int8 graph comes back as bytes.
    """
    source = source or calibration_source()
    if isinstance(fp32, bytes):
        path = _stored_path(fp32)
        if path is not None and not path.is_file():
            _write_atomic(path, fp32)
        if path is None or not path.is_file():  # no cache: quantize from a temporary copy
            with tempfile.TemporaryDirectory(prefix="canet_int8_") as tmp:
                (Path(tmp) / "fp32.onnx").write_bytes(fp32)
                return _make(Path(tmp) / "fp32.onnx", preprocess, source)
        fp32 = path
    target = int8_path(fp32, source)
    if target.is_file():
        return target
    data = _make(fp32, preprocess, source)
    _write_atomic(target, data)
    return target if target.is_file() else data


def _make(fp32: Path, preprocess: Callable[[np.ndarray], np.ndarray],
          source: CalibrationSource) -> bytes:
    log.info("making the int8 graph (once; ~20 s at 1024x512 on 2 cores, minutes under "
             "heavy load): calibrating on %s", source.path)
    return quantize_graph(fp32, [np.array(preprocess(f), np.float32) for f in source.frames()])

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

__all__ = ["SETTINGS", "cached_int8", "int8_graph", "int8_path", "quantize_graph"]

log = logging.getLogger("canet_ros.inference")
# Part of the file's name: change it whenever the quantization below changes.
SETTINGS = "qdq-u8s8-perchannel-minmax-v1"
# Small, accuracy-sensitive layers left in float: the two first convolutions (raw
# pixels), the classifier (its rounding moves argmax ties) and the FCA attention's pooled
# vectors; together ~2 % of the MACs. Measured: labels equal to fp32 on 99.47 % of CamVid
# val pixels with only the last four in float, 99.55 % with all (docs/performance.md).
KEEP_FLOAT = ("/spatial/spatial.0/spatial.0.0/Conv", "/context/context.0/context.0.0/Conv",
              "/classifier/Conv", "/fca/spatial_att/conv/Conv",
              "/fca/channel_att/fc/fc.0/MatMul", "/fca/channel_att/fc/fc.2/MatMul",
              "/fca/channel_att/fc/fc.0_1/MatMul", "/fca/channel_att/fc/fc.2_1/MatMul")


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
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="canet_int8_") as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        # Shape inference first, as the quantizer asks; no symbolic shapes (all fixed).
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=list(KEEP_FLOAT))
        return out.read_bytes()


def _stored_path(fp32: bytes) -> Path:
    """Where :func:`int8_graph` keeps a graph given as bytes, named by its hash."""
    return cache_dir() / "onnx" / f"canet_{_digest(fp32)}.onnx"


def cached_int8(fp32: Path | bytes, source: CalibrationSource | None = None) -> Path | None:
    """Return the int8 graph made earlier for this export and calibration frames, or None.

    Never calibrates: this is how ``auto`` tells a start that is ready for int8 from one
    that would first spend ~20 s (minutes on a loaded CPU) calibrating.
    """
    try:
        source = source or calibration_source()
        if isinstance(fp32, bytes):
            fp32 = _stored_path(fp32)
        target = int8_path(fp32, source) if fp32.is_file() else None
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
        if not path.is_file():
            _write_atomic(path, fp32)
        if not path.is_file():  # a read-only cache: quantize from a temporary copy
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
    log.info("making the int8 graph (once; minutes at 1024x512 on a small CPU): "
             "calibrating on %s", source.path)
    return quantize_graph(fp32, [np.array(preprocess(f), np.float32) for f in source.frames()])

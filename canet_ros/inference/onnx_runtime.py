"""Run a CANet with ONNX Runtime on the CPU: export once, cache, bind buffers once.

The same weights as the torch model are exported with a fixed 1x3xHxW input (fixed
shapes let ORT fold every size computation). Exports are cached under
``$CANET_ROS_CACHE`` (default ``$XDG_CACHE_HOME/canet_ros`` or ``~/.cache/canet_ros``)
in ``onnx/``, keyed by a hash of the weights, the resolution and the torch version,
so a new checkpoint or resolution never picks up a stale graph.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["OnnxRunner", "cache_dir", "export_onnx", "model_fingerprint", "onnxruntime_available"]

log = logging.getLogger("canet_ros.inference")
OPSET = 17


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    root = os.environ.get("CANET_ROS_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "canet_ros"


def model_fingerprint(model: nn.Module, size: tuple[int, int]) -> str:
    """Hash of every tensor in the state_dict plus what else shapes the exported graph."""
    digest = hashlib.sha256()
    digest.update(f"{size[0]}x{size[1]}|opset{OPSET}|torch{torch.__version__}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def _export_bytes(model: nn.Module, size: tuple[int, int]) -> bytes:
    width, height = size
    buffer = io.BytesIO()
    example = torch.zeros(1, 3, height, width)
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript-based exporter warns that it is deprecated; it is the one
        # that needs no extra packages and handles this model.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, input_names=["input"],
                          output_names=["logits"], opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def export_onnx(model: nn.Module, size: tuple[int, int], use_cache: bool = True) -> bytes:
    """ONNX bytes of ``model`` (fp32, CPU, eval) at network ``size`` (W, H), cached on disk."""
    path = cache_dir() / "onnx" / f"canet_{model_fingerprint(model, size)}.onnx"
    if use_cache and path.is_file():
        log.debug("ONNX graph from cache %s", path)
        return path.read_bytes()
    data = _export_bytes(model, size)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
            log.debug("ONNX graph cached at %s", path)
        except OSError as exc:  # read-only home etc.: the in-memory graph still works
            log.debug("cannot cache the ONNX graph at %s: %s", path, exc)
    return data


class OnnxRunner:
    """One ORT session with its input and output buffers bound once.

    ``forward_numpy`` returns the bound output buffer itself: it is overwritten by the
    next call, which the engine's synchronous CPU path never overlaps.
    """

    def __init__(self, onnx_bytes: bytes, size: tuple[int, int], num_classes: int,
                 threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        # Spinning workers would burn the cores other ROS nodes need, for no gain here.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        width, height = size
        self.input = np.zeros((1, 3, height, width), np.float32)
        self.output = np.zeros((1, num_classes, height, width), np.float32)
        self._binding = self.session.io_binding()
        self._binding.bind_output("logits", "cpu", 0, np.float32, list(self.output.shape),
                                  self.output.ctypes.data)

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """(1,3,H,W) float32 -> (1,C,H,W) float32 logits (the bound output buffer)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.input.shape:
            raise ValueError(f"ONNX graph expects {self.input.shape}, got {x.shape}")
        self._binding.bind_cpu_input("input", x)
        self.session.run_with_iobinding(self._binding)
        return self.output

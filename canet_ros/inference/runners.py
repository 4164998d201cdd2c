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

"""How the engine runs the model: TorchRunner (eager or CUDA graph) and CudaPipeline.

CudaPipeline keeps pinned staging buffers per frame shape and double-buffers over
three streams (upload / compute / download), so frame n+1's upload and frame n's
download overlap frame n's compute; completion is waited for with CUDA events only.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from .results import Request, SegmentationResult

log = logging.getLogger("canet_ros.inference")


_TF32_LOCK = threading.Lock()
_TF32_USERS = [0, None]  # engines inside _exact_fp32 now, the flags they found


@contextmanager
def _exact_fp32():
    """fp32 must mean fp32: cuDNN would otherwise run convolutions in TF32 on Ampere+.

    The flags are process-wide, so concurrent fp32 engines (one per camera thread) share
    one switch: the first in turns TF32 off, the last out restores what it found.
    """
    with _TF32_LOCK:
        if _TF32_USERS[0] == 0:
            _TF32_USERS[1] = (torch.backends.cudnn.allow_tf32,
                              torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        _TF32_USERS[0] += 1
    try:
        yield
    finally:
        with _TF32_LOCK:
            _TF32_USERS[0] -= 1
            if _TF32_USERS[0] == 0:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = \
                    _TF32_USERS[1]


class TorchRunner:
    """The torch model on its device, in its precision, optionally replayed as a CUDA graph."""

    runtime = "torch"

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype,
                 channels_last: bool):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype
        self.precision = {torch.float32: "fp32", torch.float16: "fp16"}[dtype]
        self.channels_last = channels_last
        self._exact = dtype == torch.float32 and device.type == "cuda"
        self._graph: Any = None
        self._static_in: torch.Tensor | None = None
        self._static_out: torch.Tensor | None = None
        self.set_channels_last(channels_last)

    def set_channels_last(self, flag: bool) -> None:
        self.channels_last = flag
        self.model.to(memory_format=torch.channels_last if flag else torch.contiguous_format)
        self._graph = None

    def format_input(self, x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.to(device=self.device, dtype=self.dtype, memory_format=fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (1,C,H,W).

        A graph replay returns its static output: consume it (in stream order) before the
        next call.
        """
        with torch.inference_mode(), (_exact_fp32() if self._exact else nullcontext()):
            if self._graph is not None and x.shape == self._static_in.shape:
                self._static_in.copy_(x)
                self._graph.replay()
                return self._static_out
            return self.model(x)

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """CPU: (1,3,H,W) float32 -> contiguous (1,C,H,W) float32 logits."""
        logits = self.forward(self.format_input(torch.from_numpy(x)))
        return logits.contiguous().numpy()

    def capture_graph(self, example: torch.Tensor) -> bool:
        """Capture the forward at ``example``'s shape; keep it only if it matches eager."""
        caller = torch.cuda.current_stream(self.device)
        try:
            static_in = example.clone()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(caller)
            exact = _exact_fp32() if self._exact else nullcontext()
            with torch.inference_mode(), exact:
                with torch.cuda.stream(side):
                    for _ in range(3):  # cuDNN autotuning and lazy inits must precede capture
                        self.model(static_in)
                caller.wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # Our own stream: graph's default capture stream is created once per
                # process on whichever device was current then, maybe not ours.
                # thread_local: other threads' CUDA calls (another camera's engine) stay
                # legal during this capture; only this thread's unsafe calls are errors.
                with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                    static_out = self.model(static_in)
                graph.replay()
                eager = self.model(static_in)
            torch.cuda.synchronize(self.device)
            tol = 1e-2 if self.dtype == torch.float16 else 1e-4
            if not torch.allclose(static_out.float(), eager.float(), rtol=tol, atol=tol):
                raise RuntimeError("graph replay differs from the eager forward")
        except Exception as exc:  # any capture problem: eager still works, just slower
            # graph.__exit__ skips restoring the stream when capture_end raises.
            torch.cuda.set_stream(caller)
            log.warning("CUDA graph capture failed (%s); running the model eagerly", exc)
            return False
        self._graph, self._static_in, self._static_out = graph, static_in, static_out
        return True


class InferenceHandle:
    """A submitted frame; ``result()`` blocks (on a CUDA event) until its outputs are ready."""

    def __init__(self, result: SegmentationResult | None = None, *, event: Any = None,
                 host: dict[str, torch.Tensor] | None = None, slot: Any = None,
                 label_dtype: np.dtype | None = None, lock: Any = None):
        self._result, self._event, self._host = result, event, host
        self._slot, self._label_dtype, self._lock = slot, label_dtype, lock

    def done(self) -> bool:
        return self._result is not None or bool(self._event.query())

    def result(self) -> SegmentationResult:
        if self._result is None:
            # Wait outside the lock so other threads can keep submitting meanwhile.
            self._event.synchronize()
            with self._lock:
                self._collect()
        return self._result

    def _collect(self) -> None:
        if self._result is not None:
            return
        self._event.synchronize()
        # Copies: the pinned buffers belong to a slot that the frame after next reuses.
        arrays = {name: buf.numpy().copy() for name, buf in self._host.items()}
        labels = arrays.pop("labels")
        if labels.dtype != self._label_dtype:
            labels = labels.astype(self._label_dtype)
        self._result = SegmentationResult(labels, **arrays)
        if self._slot.pending is self:
            self._slot.pending = None
        self._host = self._slot = None


class _Slot:
    """One staging lane: pinned input, device input, pinned outputs and their events."""

    # The buffers are written in place on every frame; made under a caller's
    # inference_mode they would be inference tensors, which refuse that outside it.
    @torch.inference_mode(False)
    def __init__(self, shape: tuple[int, ...], device: torch.device):
        self.host_in = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.host_np = self.host_in.numpy()
        self.dev_in = torch.empty(shape, dtype=torch.uint8, device=device)
        self.uploaded, self.ready, self.done = (torch.cuda.Event() for _ in range(3))
        self.host_out: dict[str, torch.Tensor] = {}
        self.pending: InferenceHandle | None = None
        self.pinned_allocations = 1

    @torch.inference_mode(False)
    def out_buffer(self, name: str, like: torch.Tensor) -> torch.Tensor:
        buf = self.host_out.get(name)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = torch.empty(like.shape, dtype=like.dtype, pin_memory=True)
            self.host_out[name] = buf
            self.pinned_allocations += 1
        return buf


class CudaPipeline:
    """Two slots per frame shape, used in turn; three streams; events, never device syncs."""

    MAX_SHAPES = 4  # a camera has one shape; a few more cover switching between sources

    def __init__(self, device: torch.device, compute: Any, lock: Any):
        self.device, self._compute_fn, self._lock = device, compute, lock
        self.upload, self.compute, self.download = (torch.cuda.Stream(device) for _ in range(3))
        self._caller_mark = torch.cuda.Event()
        self._slots: OrderedDict[tuple[int, int], list[_Slot]] = OrderedDict()
        self._turn: dict[tuple[int, int], int] = {}

    @property
    def pinned_allocations(self) -> int:
        return sum(s.pinned_allocations for pair in self._slots.values() for s in pair)

    def _slot_for(self, shape: tuple[int, ...]) -> _Slot:
        key = (shape[0], shape[1])
        if key not in self._slots:
            while len(self._slots) >= self.MAX_SHAPES:
                for old in self._slots.popitem(last=False)[1]:
                    if old.pending is not None:
                        old.pending._collect()
            self._slots[key] = [_Slot(shape, self.device) for _ in range(2)]
            self._turn[key] = 0
        self._slots.move_to_end(key)
        turn = self._turn[key]
        self._turn[key] = 1 - turn
        return self._slots[key][turn]

    def clock(self) -> Any:
        """Return a stage clock for :meth:`submit` (CUDA events; see ``results.CudaStageClock``)."""
        from .results import CudaStageClock

        return CudaStageClock()

    def submit(self, frame: np.ndarray, req: Request, label_dtype: np.dtype,
               clock: Any = None) -> InferenceHandle:
        slot = self._slot_for(frame.shape)
        if slot.pending is not None:  # its pinned outputs are about to be overwritten
            slot.pending._collect()
        slot.uploaded.synchronize()  # the previous upload from host_in has finished
        np.copyto(slot.host_np, frame)
        with torch.cuda.device(self.device):
            # Our streams do not sync with the caller's (torch makes them non-blocking):
            # the model's weights may still be being written there (memory-format
            # conversion, a user's in-place edit).
            self._caller_mark.record(torch.cuda.current_stream(self.device))
            self.compute.wait_event(self._caller_mark)
            with torch.cuda.stream(self.upload):
                self.upload.wait_event(slot.done)  # dev_in is free once that frame is out
                if clock is not None:  # "preprocess" includes the upload
                    clock.restart()
                slot.dev_in.copy_(slot.host_in, non_blocking=True)
                slot.uploaded.record(self.upload)
            with torch.cuda.stream(self.compute), torch.inference_mode():
                self.compute.wait_event(slot.uploaded)
                outs = self._compute_fn(slot.dev_in, req, clock)
                slot.ready.record(self.compute)
            host = {}
            with torch.cuda.stream(self.download):
                self.download.wait_event(slot.ready)
                for name, tensor in outs.items():
                    buf = slot.out_buffer(name, tensor)
                    buf.copy_(tensor, non_blocking=True)
                    tensor.record_stream(self.download)  # allocated on compute, read here
                    host[name] = buf
                if clock is not None:
                    clock.mark("download")
                slot.done.record(self.download)
        handle = InferenceHandle(event=slot.done, host=host, slot=slot,
                                 label_dtype=label_dtype, lock=self._lock)
        slot.pending = handle
        return handle

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

"""The engine's CPU frame path: model, labels, colour, overlay and confidence for a frame.

:class:`CpuFramePath` is a base class of ``engine.SegmentationEngine`` (as
``torch_backend.DevicePath`` is the CUDA path's), kept apart so the engine file stays
about construction and the public calls. Its methods run on the engine itself and read
its current state: ``_pre`` (``preprocess.Preprocessor``), ``_runner``, ``_packed``
(the palette, which ``set_class_colors`` swaps), ``label_dtype``, ``tta``,
``resolution``, ``out_hw``, ``grid`` and ``_pool`` (None until the first frame).
:func:`asked_outputs` picks the caller's arrays (``into``) that outputs are written to.
"""
from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import kernels
from . import postprocess as post
from .lowres import frame_post_from_lowres
from .results import EngineError, Request, SegmentationResult, StageClock


class CpuFramePath:
    """One frame at a time on the CPU, in the caller's thread (plus one helper thread)."""

    def _helper(self) -> ThreadPoolExecutor | None:
        """Return a worker thread for the frame path's independent halves (None on 1 CPU)."""
        # The runtimes' own threads sit idle (they do not spin) once the model has run.
        if self._pool is None and (os.cpu_count() or 1) > 1:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="canet_post")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool

    def _infer_cpu(self, frame: np.ndarray, req: Request, clock: StageClock | None,
                   into: Mapping[str, np.ndarray]) -> SegmentationResult:
        mark = clock.mark if clock is not None else (lambda stage: None)
        if clock is not None:
            clock.restart()
        x = self._pre(frame, req.order, helper=self._helper())
        mark("preprocess")
        out_hw = self.out_hw(frame.shape[:2])
        frame_post = self._frame_post(x, out_hw, req, mark, into)
        mark("upsample_argmax")
        color = overlay = conf = None
        if req.color:
            color = frame_post.colour("rgb", into.get("color"))
        mark("colour")
        if req.overlay:
            base = frame if out_hw == frame.shape[:2] else self._pre.small_frame()
            overlay = frame_post.overlay(base, req.order, req.alpha, color, into.get("overlay"),
                                         self._helper())
        mark("overlay")
        if req.confidence:
            conf = frame_post.confidence()
        mark("confidence")
        return SegmentationResult(frame_post.labels, color, overlay, conf)

    def _frame_post(self, x: np.ndarray, out_hw: tuple[int, int], req: Request,
                    mark: Any, into: Mapping[str, np.ndarray]) -> post.FramePost:
        """Run the model, then make the labels at ``out_hw`` (marks "model" in between)."""
        grid, helper, confidence = self.grid(out_hw), self._helper(), req.confidence
        if getattr(self._runner, "lowres", False) and not self.tta and (
                not confidence or kernels.available()):
            # Logits before the network's final upsample, which is itself a cell grid: the
            # labels are the upsampled logits' without making them (``lowres``), and the
            # compiled loops take the softmax sums from them too.
            low = self._runner.forward_lowres(x)[0]
            mark("model")
            net_grid = self.grid(self.resolution[::-1], in_hw=low.shape[1:])
            return frame_post_from_lowres(low, net_grid, grid, self.label_dtype,
                                          self._packed, helper, confidence, into,
                                          want_colour=req.color or req.overlay)
        logits = self._runner.forward_numpy(x)[0]
        if self.tta:  # the runner may reuse its output buffer: copy the first result
            logits = post.flip_tta_logits(
                logits.copy(), self._runner.forward_numpy(np.ascontiguousarray(x[..., ::-1]))[0])
        mark("model")
        return post.FramePost(logits, grid, self.label_dtype, self._packed,
                              want_confidence=confidence, helper=helper)


def asked_outputs(into: Mapping[str, np.ndarray] | None, req: Request) -> dict[str, np.ndarray]:
    """Return ``into``'s arrays for the outputs ``req`` asks for (EngineError: read-only)."""
    # The others stay the caller's: an overlay alone makes a colour, not into["color"].
    names = {"labels", *(n for n in ("color", "overlay", "confidence") if getattr(req, n))}
    asked = {name: array for name, array in (into or {}).items() if name in names}
    stuck = sorted(name for name, array in asked.items()
                   if isinstance(array, np.ndarray) and not array.flags.writeable)
    if stuck:
        raise EngineError(f"into: read-only array(s) for {stuck}; outputs cannot go there")
    return asked

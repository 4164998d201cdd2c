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

"""``canet benchmark``: model-only and end-to-end latency of the inference engine.

Nothing heavy is imported until ``run``: the parser must build in a blink.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import positive_int, tta_scale
from .argtypes import checkpoint_spec, device, non_negative_int, width_x_height
from .choices import BACKBONES

frame_size = width_x_height  # argparse type: "WIDTHxHEIGHT" -> (width, height)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="time the model and the whole image pipeline",
                       description="Median/p99 latency of the CANet forward on a normalised "
                       "tensor and of a bgr8 Image message of any camera size -> labels, "
                       "colour mask, overlay and confidence messages, with a per-stage "
                       "breakdown; achieved GFLOP/s against this machine's fp32 matmul rate. "
                       "With --startup: how long the commands and the ROS node take to "
                       "start instead. Fields: docs/performance.md.")
    p.add_argument("--backbone", choices=BACKBONES, default=None,
                   help="backbone of the untrained model timed without --checkpoint (default "
                        "mobilenetv2); with --checkpoint the checkpoint's, which this must "
                        "match when given")
    # None: the checkpoint's input_size, as evaluate, segment-bag, export and the node use.
    p.add_argument("--height", type=positive_int, default=None,
                   help="network input height (default: the checkpoint's input_size, else "
                   "512, the paper's Cityscapes size)")
    p.add_argument("--width", type=positive_int, default=None,
                   help="network input width (default: the checkpoint's input_size, else "
                   "1024)")
    p.add_argument("--frame-size", type=frame_size, default=None, metavar="WxH",
                   help="camera frame size of the pipeline figures (default: the network "
                   "size), e.g. 1920x1200")
    p.add_argument("--image", default="sample", metavar="sample|synthetic|FILE",
                   help="frame content: the bundled CamVid sample (default), a synthetic "
                   "gradient, or an image file; resized to --frame-size")
    p.add_argument("--device", default="auto", type=device, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16", "int8"),
                   default="auto", help="fp16: CUDA only; bf16, int8: CPU only, where the CPU "
                   "has the instructions; auto (default): on the CPU the fastest precision "
                   "within the accuracy rule (docs/performance.md; int8 once its calibration "
                   "is cached), on CUDA fp32")
    p.add_argument("--runtime", choices=("auto", "torch", "onnxruntime"), default="auto")
    p.add_argument("--iters", type=positive_int, default=None,
                   help="timed iterations per measurement (default: as many as fit about "
                   "30 s on this machine, 10 to 50; the whole run takes about a minute)")
    p.add_argument("--warmup", type=non_negative_int, default=2,
                   help="untimed iterations first (default 2, after the first call and the "
                   "round that sizes the run)")
    p.add_argument("--checkpoint", type=checkpoint_spec, default=None,
                   help="checkpoint to time ('default' = bundled model); without it an "
                   "untrained CANet with the CamVid class count, which costs the same")
    p.add_argument("--compare", action="store_true",
                   help="also time torchvision LR-ASPP and DeepLabV3 (MobileNetV3-Large) and "
                   "this CANet in torch and in a separate ONNX Runtime session")
    p.add_argument("--matmul-size", type=positive_int, default=None,
                   help="square fp32 matmul size for reference_gflops (default: sized to "
                   "this machine, 512 to 4096, so one multiply takes about 0.25 s)")
    p.add_argument("--startup", action="store_true",
                   help="time start-up instead: canet --help and each command's --help, the "
                   "node's exit on a bad parameter, the node ready with --checkpoint (default "
                   "'default') with its ONNX export cached and not")
    p.add_argument("--tta", action="store_true",
                   help="also time the offline tools' test-time augmentation: the engine's "
                   "flip (segment-bag --tta, evaluate --tta) and the torch prediction evaluate "
                   "runs for --tta-scales, each against the same call without it")
    p.add_argument("--tta-scales", nargs="+", type=tta_scale, default=None, metavar="S",
                   help="with --tta, also time flip + these input scales (e.g. 0.75 1 1.25)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars or status lines on stderr")
    p.set_defaults(func=run)


def _timing_lines(r: dict[str, Any]) -> list[str]:
    if r.get("model_ms") is None:
        return []
    return [
        f"  model          {r['model_ms']:8.2f} ms median  {r['model_p99_ms']:8.2f} ms p99  "
        f"{r['model_fps']:8.1f} FPS",
        f"  labels only    {r['pipeline_labels_ms']:8.2f} ms median  "
        f"{r['pipeline_labels_p99_ms']:8.2f} ms p99  (x{r['pipeline_labels_over_model']:.3f} "
        "of model)",
        f"  labels+colour+overlay {r['pipeline_ms']:8.2f} ms median  (x"
        f"{r['pipeline_over_model']:.3f} of model)",
        f"  all four       {r['pipeline_all_ms']:8.2f} ms median  {r['pipeline_all_p99_ms']:8.2f}"
        f" ms p99  (x{r['pipeline_all_over_model']:.3f} of model)",
        "  stages (all four, medians): " + ", ".join(f"{k} {v:.2f}"
                                                     for k, v in r["stages_ms"].items()),
    ] + ([
        "  stages (labels only): " + ", ".join(
            f"{k} {v:.2f}" for k, v in r["stages_labels_ms"].items())
    ] if r.get("stages_labels_ms") else [])


def _summary(r: dict[str, Any]) -> str:
    """Return the report as text; an interrupted run's has only the lines it measured."""
    lines = [f"CANet/{r['backbone']} {r['width']}x{r['height']}, {r['precision']}, runtime "
             f"{r['runtime']} on {r['device']} ({r['iters']} iters); frames "
             f"{r['frame_width']}x{r['frame_height']}: {r['frame_source']}"]
    lines += _timing_lines(r)
    if r.get("pipeline_stream_ms") is not None:
        lines.append(f"  streamed       {r['pipeline_stream_ms']:8.2f} ms/frame with one frame "
                     f"in flight")
    if r.get("model_gflops") is not None:
        reference = (f", {r['reference_gflops']:.1f} GFLOP/s fp32 matmul "
                     f"({r['gflops_ratio']:.2f}x)" if r.get("reference_gflops") else "")
        lines.append(f"  compute        {r['gmacs']:.2f} GMACs -> {r['model_gflops']:.1f} "
                     f"GFLOP/s achieved{reference}")
    if r.get("peak_host_mb") is not None:
        lines.append(f"  memory         host peak {r['peak_host_mb']:.0f} MB"
                     + (f", device peak {r['peak_device_mb']:.0f} MB"
                        if r["peak_device_mb"] is not None else ""))
    lines += _tta_lines(r.get("tta"))
    for name, ms in (r.get("compare") or {}).items():
        lines.append(f"  compare        {name:30s} " + ("n/a" if ms is None else f"{ms:8.2f} ms"))
    lines += [f"  note           {n}" for n in r.get("notes", [])]
    if r.get("interrupted"):
        lines.append(f"  interrupted    after {r['iters']} complete rounds; what was not "
                     f"measured is left out")
    return "\n".join(lines)


def _tta_lines(t: dict[str, Any] | None) -> list[str]:
    if not t:
        return []
    lines = [f"  tta            evaluate flip {t['offline_tta_flip_ms']:8.2f} ms vs "
             f"{t['offline_labels_ms']:.2f} (x{t['offline_tta_flip_over_plain']:.2f}); "
             f"segment-bag flip labels {t['pipeline_labels_tta_ms']:.2f} ms "
             f"(x{t['pipeline_labels_tta_over_plain']:.2f})"]
    if "offline_tta_scales_ms" in t:
        scales = " ".join(f"{s:g}" for s in t["scales"])
        lines.append(f"  tta            evaluate flip + scales {scales}: "
                     f"{t['offline_tta_scales_ms']:.2f} ms "
                     f"(x{t['offline_tta_scales_over_plain']:.2f}, "
                     f"{t['offline_tta_scales_passes']} passes)")
    return lines


def subcommand_names() -> list[str]:
    """Return the ``canet`` subcommands, as a user types them."""
    from . import build_parser

    action = next(a for a in build_parser()._actions
                  if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def run(args: argparse.Namespace) -> int:
    if args.startup:
        from ..benchmark.startup import measure_startup, never_ready, summary
        from ..errors import CanetError

        report = measure_startup(subcommand_names(), args.checkpoint or "default",
                                 progress=not args.no_progress, backbone=args.backbone)
        print(json.dumps(report) if args.json else summary(report), flush=True)
        failed = never_ready(report)  # the figures above, then a status that says so
        if failed:
            raise CanetError(failed)
        return 0
    from ..benchmark import run_benchmark
    from ..inference import EngineError

    if args.tta_scales and not args.tta:
        raise EngineError("--tta-scales needs --tta")
    try:
        report = run_benchmark(
            backbone=args.backbone, height=args.height, width=args.width, device=args.device,
            precision=args.precision, iters=args.iters, warmup=args.warmup,
            checkpoint=args.checkpoint, runtime=args.runtime, compare=args.compare,
            matmul_size=args.matmul_size, progress=not args.no_progress,
            frame_size=args.frame_size, image=args.image,
            tta_scales=(args.tta_scales or [1.0]) if args.tta else None)
    except ValueError as exc:  # EngineError is a CanetError: "error:" and status 1 upstream
        raise EngineError(str(exc)) from None
    print(json.dumps(report) if args.json else _summary(report))
    if report.get("interrupted"):
        print("canet benchmark: interrupted; printed what was measured so far",
              file=sys.stderr)
        return 130
    return 0

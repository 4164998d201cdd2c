"""``canet benchmark``: model-only and end-to-end latency of the inference engine."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..models import BACKBONES

    p = sub.add_parser("benchmark", help="time the model and the whole image pipeline",
                       description="Median/p99 latency of the CANet forward on a normalised "
                       "tensor and of a bgr8 Image message -> labels, colour mask and overlay "
                       "messages; achieved GFLOP/s against this machine's fp32 matmul rate.")
    p.add_argument("--backbone", choices=BACKBONES, default="mobilenetv2")
    p.add_argument("--height", type=int, default=512, help="network input height")
    p.add_argument("--width", type=int, default=1024, help="network input width")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    p.add_argument("--runtime", choices=("auto", "torch", "onnxruntime"), default="auto")
    p.add_argument("--iters", type=int, default=50, help="timed iterations per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint to time ('default' = bundled model); without it an "
                   "untrained CANet with the CamVid class count, which costs the same")
    p.add_argument("--compare", action="store_true",
                   help="also time torchvision LR-ASPP and DeepLabV3 (MobileNetV3-Large) and "
                   "this CANet in ONNX Runtime on the same input")
    p.add_argument("--matmul-size", type=int, default=4096,
                   help="square fp32 matmul size for reference_gflops")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)


def _summary(r: dict[str, Any]) -> str:
    lines = [
        f"CANet/{r['backbone']} {r['width']}x{r['height']}, {r['precision']}, runtime "
        f"{r['runtime']} on {r['device']} (torch {r['torch']}, {r['iters']} iters)",
        f"  model     {r['model_ms']:8.2f} ms median  {r['model_p99_ms']:8.2f} ms p99  "
        f"{r['model_fps']:8.1f} FPS",
        f"  pipeline  {r['pipeline_ms']:8.2f} ms median  {r['pipeline_p99_ms']:8.2f} ms p99  "
        f"{r['pipeline_fps']:8.1f} FPS  (x{r['pipeline_over_model']:.3f} of model)",
        f"  streamed  {r['pipeline_stream_ms']:8.2f} ms/frame with one frame in flight",
        f"  compute   {r['gmacs']:.2f} GMACs -> {r['model_gflops']:.1f} GFLOP/s achieved, "
        f"{r['reference_gflops']:.1f} GFLOP/s fp32 matmul ({r['gflops_ratio']:.2f}x)",
        f"  memory    host peak {r['peak_host_mb']:.0f} MB"
        + (f", device peak {r['peak_device_mb']:.0f} MB" if r["peak_device_mb"] is not None
           else ""),
    ]
    for name, ms in (r.get("compare") or {}).items():
        lines.append(f"  compare   {name:30s} " + ("n/a" if ms is None else f"{ms:8.2f} ms"))
    lines += [f"  note      {n}" for n in r.get("notes", [])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..benchmark import run_benchmark
    from ..inference import EngineError

    try:
        report = run_benchmark(
            backbone=args.backbone, height=args.height, width=args.width, device=args.device,
            precision=args.precision, iters=args.iters, warmup=args.warmup,
            checkpoint=args.checkpoint, runtime=args.runtime, compare=args.compare,
            matmul_size=args.matmul_size, progress=not args.no_progress)
    except (EngineError, ValueError) as exc:
        print(f"canet benchmark: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else _summary(report))
    return 0

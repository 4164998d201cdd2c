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

"""``canet export``: a checkpoint as an ONNX file, or as a shipping checkpoint.

The ONNX file is for TensorRT and other runtimes; the shipping checkpoint is fp16, without
training state, optionally prior-corrected.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import positive_int, prior_strength
from .argtypes import checkpoint_spec, device

PROG = "canet export"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a checkpoint as an ONNX file (for TensorRT, ONNX Runtime ...) "
        "or as a shipping checkpoint",
        description="--format onnx: the network with its normalisation inside the graph: "
        "input 'image' float32 NCHW RGB 0..255; outputs 'logits' (N,C,H,W) and 'labels' int32 "
        "(N,H,W); shapes, class names and palette in the file's metadata (docs/export.md "
        "has the trtexec line). --format checkpoint: a run's best.pt or last.pt as the "
        "checkpoint the node loads: fp16, no optimiser state, EMA weights where the run kept "
        "them, and with --prior-correction the class-prior correction baked in.")
    p.add_argument("--checkpoint", type=checkpoint_spec, default="default",
                   help="checkpoint path or 'default' (the bundled CamVid model)")
    p.add_argument("--format", choices=("onnx", "checkpoint"), default="onnx",
                   help="output format (default onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write, e.g. canet.onnx")
    p.add_argument("--height", type=positive_int, help="fixed input height (default: the "
                   "checkpoint's training size)")
    p.add_argument("--width", type=positive_int, help="fixed input width (default: the "
                   "checkpoint's training size)")
    p.add_argument("--dynamic", action="store_true",
                   help="free batch, height and width (any size of at least 32)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default=None,
                   help="weights (and, for ONNX, activations); for TensorRT export fp32 and "
                   "build with --fp16 (default: fp32 for onnx, fp16 for checkpoint)")
    p.add_argument("--prior-correction", type=prior_strength, default=None, metavar="S",
                   help="checkpoint format: total class-prior correction strength, 0..2 "
                   "(default: keep the source's; docs/training.md)")
    p.add_argument("--opset", type=positive_int, default=None,
                   help="ONNX opset (default 17, what TensorRT 8.5+ reads)")
    p.add_argument("--device", default="auto", type=device,
                   help="where to trace: auto, cpu, cuda (fp16 tracing on a CPU is slow)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def _run_checkpoint(args: argparse.Namespace) -> int:
    from ..export_onnx import ExportError
    from ..prior_correction import current_strength
    from ..training.export import export_checkpoint

    onnx_only = [flag for flag, given in (("--height", args.height), ("--width", args.width),
                                          ("--dynamic", args.dynamic), ("--opset", args.opset))
                 if given]
    if onnx_only:
        raise ExportError(f"{', '.join(onnx_only)}: ONNX options, not for --format checkpoint")
    if Path(args.out).is_dir():
        raise ExportError(f"{args.out}: a folder; --out needs a file name such as model.pt")
    precision = args.precision or "fp16"
    # No class weights to correct for raises PriorCorrectionError, a CanetError: exit 1.
    path = export_checkpoint(args.checkpoint, args.out, half=precision == "fp16",
                             prior_correction=args.prior_correction)
    from ..checkpoint import read_checkpoint

    strength = current_strength(read_checkpoint(path))
    result = {"path": str(path), "bytes": path.stat().st_size, "precision": precision,
              "prior_correction": strength}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {path} ({result['bytes'] / 2 ** 20:.1f} MiB, {precision}, prior "
              f"correction {strength:g})")
    return 0


def _check_before_announcing(args: argparse.Namespace, size: tuple | None) -> None:
    """Check what export_onnx_file checks first, before "exporting ..." is printed.

    A bad request is then one error line.
    """
    from ..checkpoint import read_checkpoint
    from ..export_onnx import DEFAULT_OPSET, ExportError, _check_request

    _check_request(size, args.dynamic, args.precision, args.opset or DEFAULT_OPSET)
    if Path(args.out).is_dir():
        raise ExportError(f"{args.out}: a folder; --out needs a file name such as model.onnx")
    read_checkpoint(args.checkpoint)


def run(args: argparse.Namespace) -> int:
    from ..export_onnx import DEFAULT_OPSET, ExportError, export_onnx_file

    if args.format == "checkpoint":
        return _run_checkpoint(args)
    if args.prior_correction is not None:
        raise ExportError("--prior-correction applies to --format checkpoint; export the "
                          "corrected checkpoint first, then ONNX from it")
    args.precision = args.precision or "fp32"
    if (args.height is None) != (args.width is None):
        raise ExportError("give --height and --width together (or neither, for the "
                          "checkpoint's training size)")
    size = (args.width, args.height) if args.height is not None else None
    _check_before_announcing(args, size)
    slow = (" (fp16 is traced on the CPU unless CUDA is present: a minute or more)"
            if args.precision == "fp16" and args.device != "cuda" else "")
    print(f"{PROG}: exporting {args.checkpoint} ({args.precision}) to {args.out}{slow} ...",
          file=sys.stderr)
    result = export_onnx_file(args.checkpoint, args.out, size=size, dynamic=args.dynamic,
                              precision=args.precision, opset=args.opset or DEFAULT_OPSET,
                              device=args.device)
    image = json.loads(result.metadata["input"])
    outputs = json.loads(result.metadata["outputs"])
    if args.json:
        print(json.dumps({"path": str(result.path), "bytes": result.nbytes, "input": image,
                          "outputs": outputs}))
        return 0
    print(f"wrote {result.path} ({result.nbytes / 2 ** 20:.1f} MiB, opset "
          f"{result.metadata['opset']}, {args.precision})")
    for item in (image, *outputs):
        shape = "x".join(str(d) for d in item["shape"])
        print(f"  {item['name']:7s} {item['dtype']:8s} {shape}")
    return 0

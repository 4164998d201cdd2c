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

"""``canet info``: the model's size, measured on the real module; ``--system``: the machine's."""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List

from . import positive_int
from .argtypes import checkpoint_spec
from .choices import BACKBONES

# Paper Table 2 (1024x512, 19 classes); the paper's "FLOPs" are multiply-accumulates.
# Only the paper's three CANets have a row; describe() says so for any other backbone.
PAPER_TABLE2 = {
    "mobilenetv2": {"name": "CANet1", "params_m": 4.8, "gmacs": 18.5},
    "resnet18": {"name": "CANet2", "params_m": 15.8, "gmacs": 38.7},
    "resnet101": {"name": "CANet3", "params_m": None, "gmacs": None},
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="parameters, MACs and output shape of a CANet, or a "
                       "checkpoint's metadata")
    p.add_argument("--backbone", choices=BACKBONES, default="mobilenetv2")
    p.add_argument("--num-classes", type=positive_int, default=19)
    p.add_argument("--height", type=positive_int, default=512)
    p.add_argument("--width", type=positive_int, default=1024)
    p.add_argument("--checkpoint", type=checkpoint_spec,
                   help="describe this checkpoint ('default' = bundled model) instead of a "
                   "fresh model")
    p.add_argument("--system", action="store_true", help="describe this machine instead: "
                   "torch and CUDA, the CPU's precisions and runtimes, what precision auto "
                   "tries, whether the numba loops run and why not; no model is loaded")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def describe(backbone: str, num_classes: int, height: int, width: int) -> Dict[str, Any]:
    from ..models import build_canet, count_macs, count_params

    model = build_canet(backbone, num_classes)
    macs, shape = count_macs(model, height, width)
    info: Dict[str, Any] = {
        "backbone": backbone, "num_classes": num_classes, "input_shape": [1, 3, height, width],
        "params": count_params(model), "gmacs": macs / 1e9, "output_shape": list(shape),
    }
    ref = PAPER_TABLE2.get(backbone)
    if ref is None:  # a backbone added since (docs/design.md, Extending): nothing to compare
        info["paper"] = {"model": None, "params_m": None, "gmacs": None,
                         "note": "the paper's Table 2 has no row for this backbone"}
    else:
        info["paper"] = {"model": ref["name"], "params_m": ref["params_m"],
                         "gmacs": ref["gmacs"], "note": "Table 2, 1024x512 input, 19 classes"}
    return info


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes (hex), as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checkpoint_info(spec: str) -> Dict[str, Any]:
    from ..checkpoint import read_checkpoint, resolve_checkpoint

    blob = read_checkpoint(spec)
    meta = {k: v for k, v in blob.items() if k != "state_dict" and not k.startswith("train_state")}
    path = resolve_checkpoint(spec)
    meta["path"] = str(path)
    # The node's ready line and diagnostics show its first 12 digits: which file runs.
    meta["sha256"] = file_sha256(path)
    meta["params"] = int(sum(v.numel() for k, v in blob["state_dict"].items()
                             if v.is_floating_point() and "running_" not in k))
    return meta


def history_note(meta: Dict[str, Any]) -> str:
    """Return what ``metrics`` is: the training run's record, not necessarily this file's scores."""
    recorded = (meta.get("metrics") or {}).get("prior_correction")
    now = meta.get("prior_correction") or 0.0
    note = "recorded by canet train when it chose these weights"
    if recorded is not None and recorded != now:
        note += (f", at class-prior correction {recorded:g}; this file has {now:g}, so these "
                 f"are not its figures")
    return note


def _set_lines(evaluation: Dict[str, Any]) -> List[str]:
    lines = []
    for name, fig in (evaluation.get("sets") or {}).items():
        lines.append(f"  {name}: {100 * fig['miou']:.1f} mIoU, {100 * fig['global_acc']:.1f} % "
                     f"global accuracy")
    if evaluation.get("new_camera"):
        lines.append(f"  on a new camera: {evaluation['new_camera']}")
    return lines


def _figures_lines(meta: Dict[str, Any]) -> List[str]:
    evaluation = meta.get("evaluation")
    if evaluation:
        return ([f"this file's figures ({evaluation.get('note', 'measured on this file')}):"]
                + _set_lines(evaluation))
    card = " (the bundled model's: canet_ros/weights/MODEL_CARD.md)" if meta.get(
        "path", "").endswith("canet_mobilenetv2_camvid.pt") else ""
    lines = [f"this file's figures: none recorded in the file{card}; measure them with "
             f"canet evaluate --checkpoint FILE"]
    source = meta.get("source_evaluation")
    if source:
        # canet export changed the correction after these were measured (export.py), so
        # they are the source's figures: a different bias scores differently.
        lines.append(f"the source's figures (measured at class-prior correction "
                     f"{source.get('prior_correction') or 0:g} on the file before canet export "
                     f"changed it; this file has {meta.get('prior_correction') or 0:g}, so "
                     f"these are not its figures):")
        lines += _set_lines(source)
    return lines


def _history_lines(meta: Dict[str, Any]) -> List[str]:
    metrics = meta.get("metrics") or {}
    lines = [f"training history ({history_note(meta)}):"]
    if "epoch" in metrics:
        lines.append(f"  chosen at epoch {metrics['epoch']} by {metrics.get('selection', '?')}")
    for name, value in metrics.items():
        if isinstance(value, dict) and "miou" in value:
            frames = f" ({value['frames']} frames)" if "frames" in value else ""
            lines.append(f"  {name}: {100 * value['miou']:.1f} mIoU, "
                         f"{100 * value['global_acc']:.1f} % global accuracy{frames}")
    if meta.get("history"):
        lines.append(f"  how it was made: {meta['history']}")
    args = meta.get("train_args") or {}
    if args:
        lines.append("  training arguments (paths relative to the run's folder on the machine "
                     "that trained it):")
        lines += [f"    {key}: {value}{_ARG_NOTES.get(key, '') if value else ''}"
                  for key, value in args.items()]
    return lines


_ARG_NOTES = {"init_weights": "  (the checkpoint this run started from, not shipped)",
              "resume": "  (the checkpoint this run continued)"}


def _print_checkpoint(info: Dict[str, Any]) -> None:
    size = info.get("input_size")
    print(f"checkpoint: {info['path']} (sha256 {info['sha256'][:12]})")
    print(f"model: CANet with {info['backbone']}, {info['params']:,} parameters, "
          f"{info['num_classes']} classes ({info.get('class_set')}), input "
          f"{'x'.join(map(str, size)) if size else 'not recorded'}")
    print(f"classes: {', '.join(info.get('class_names') or [])}")
    print(f"class-prior correction: {info.get('prior_correction') or 0:g}"
          f"{' (folded into the classifier bias)' if info.get('prior_correction') else ''}")
    for line in _figures_lines(info) + _history_lines(info):
        print(line)


def run(args: argparse.Namespace) -> int:
    # A bad checkpoint raises CheckpointError: run_command prints it as "error:", status 1.
    if args.system:
        from .info_system import report_lines, system_report

        report = system_report()
        print(json.dumps(report) if args.json else "\n".join(report_lines(report)))
        return 0
    if args.checkpoint:
        info = _checkpoint_info(args.checkpoint)
        info["metrics_note"] = history_note(info)
    else:
        info = describe(args.backbone, args.num_classes, args.height, args.width)
    if args.json:
        print(json.dumps(info, indent=None, default=str))
        return 0
    if args.checkpoint:
        _print_checkpoint(info)
        return 0
    for key, value in info.items():
        print(f"{key:>14}: {value}")
    return 0

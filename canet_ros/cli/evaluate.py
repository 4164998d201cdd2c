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

"""``canet evaluate``: mIoU, global accuracy and per-class IoU of a checkpoint on a split."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from ..checkpoint import CheckpointError
from ..errors import DatasetError
from ..metrics import clean_json
from . import EXIT_INTERRUPTED, positive_int, prior_strength, run_command, tta_scale
from .argtypes import checkpoint_spec, device, non_negative_int, path_text, resolution
from .choices import DATASETS
from .shm import report_shm_or_raise


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a checkpoint on a dataset split",
        description="One confusion matrix over the whole split; ignored pixels excluded; "
                    "classes absent from prediction and ground truth left out of the mean. "
                    "Frames are resized to the network resolution, logits upsampled to the "
                    "label size.")
    p.add_argument("--checkpoint", type=checkpoint_spec, default="default",
                   help="checkpoint path or 'default'")
    p.add_argument("--dataset", choices=DATASETS, default="camvid")
    p.add_argument("--data-root", default=None, type=path_text,
                   help="dataset folder (default: $CANET_CAMVID_ROOT / $CANET_CITYSCAPES_ROOT "
                        "or ../shared/data/<dataset>); with --dataset folder, your own "
                        "dataset (docs/own_data.md)")
    p.add_argument("--split", default=None,
                   help="val or test (or train); join splits with + (train+val); default val, "
                        "with --holdout see there")
    p.add_argument("--holdout", default=None, metavar="DRIVE",
                   help="score one drive/sequence (e.g. 0006R0): for a checkpoint of a "
                        "'canet train --holdout DRIVE' run the set it selected on (that "
                        "drive's frames of its training split), else of train+val; --split "
                        "overrides; takes --exclude, not --include")
    p.add_argument("--resolution", default=None, metavar="WxH", type=resolution,
                   help="network input size (default: the checkpoint's training input size)")
    p.add_argument("--device", default="auto", type=device,
                   help="cpu, cuda, cuda:1 ... (default auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16", "int8"),
                   default="fp32", help="the inference engine's precision, as in segment-bag "
                   "and the node: fp16 CUDA only; bf16, int8 CPU only, where the CPU has the "
                   "instructions; auto: the one segment-bag's auto picks, or fp32 where "
                   "only torch can score (multi-scale --tta-scales, --prior-correction, a "
                   "network input under 32 px or unset) (default: fp32, the reference)")
    # extend: a repeated flag adds prefixes (the last one alone used to win)
    p.add_argument("--include", nargs="*", default=None, metavar="PREFIX", action="extend",
                   help="only frames whose name starts with one of these (e.g. 0001TP)")
    p.add_argument("--exclude", nargs="*", default=None, metavar="PREFIX", action="extend",
                   help="skip frames whose name starts with one of these")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="frames per forward where evaluate runs torch itself (multi-scale "
                   "--tta-scales, --prior-correction); the engine takes one at a time")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader workers")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save-vis", default=None, metavar="DIR", type=path_text,
                   help="write frame|truth|prediction PNGs, an IoU bar chart and a confusion "
                        "matrix PNG here")
    p.add_argument("--class-colors", metavar="FILE", type=path_text,
                   help="class colours YAML for the --save-vis pictures, as segment-bag's "
                        "--class-colors (default: the checkpoint's colours)")
    p.add_argument("--vis-count", type=non_negative_int, default=8,
                   help="frames to visualise (default 8)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the prediction of the frame and "
                        "its mirror image (2x the cost)")
    p.add_argument("--tta-scales", nargs="+", type=tta_scale, default=None, metavar="S",
                   help="with --tta, also these input scales (e.g. 0.75 1 1.25)")
    p.add_argument("--prior-correction", type=prior_strength, default=None, metavar="S",
                   help="score with this class-prior correction strength (0..2) instead of "
                        "the checkpoint's own; try values on a run's best.pt before "
                        "'canet export --format checkpoint --prior-correction S'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..class_colors import read_class_colors
    from ..evaluation import TTA, evaluate_checkpoint, format_table, parse_resolution, scored_set

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    split = args.split if args.split or args.holdout else "val"
    tta = TTA(flip=True, scales=tuple(args.tta_scales or (1.0,))) if args.tta else None
    try:
        if args.tta_scales and not args.tta:
            raise ValueError("--tta-scales needs --tta")
        if args.class_colors and not args.save_vis:
            raise ValueError("--class-colors colours the --save-vis pictures; add --save-vis DIR")
        colors = read_class_colors(args.class_colors) if args.class_colors else None
        result = evaluate_checkpoint(
            args.checkpoint, args.dataset, args.data_root, split, holdout=args.holdout,
            resolution=parse_resolution(args.resolution), device=device,
            include=args.include, exclude=args.exclude, batch_size=args.batch_size,
            workers=args.workers, save_vis=args.save_vis, vis_count=args.vis_count,
            tta=tta, show_progress=True, prior_correction=args.prior_correction,
            precision=args.precision, class_colors=colors)
    except (CheckpointError, DatasetError, ValueError) as exc:
        print(f"canet evaluate: error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a full /dev/shm is the machine's, not a bug: one line
        return report_shm_or_raise(exc, "canet evaluate")
    result.pop("confusion_matrix")  # in the PNG with --save-vis; too bulky for the JSON line
    if args.json:
        print(json.dumps(clean_json(result)))  # no NaN: a split with no pixel scored
    else:
        size = "x".join(map(str, result["resolution"])) if result["resolution"] else "native"
        prior = result["prior_correction"]
        scored = scored_set(args.dataset, result["split"], result["include"], args.exclude)
        print(f"{result['checkpoint']} on {scored}"
              f", network input {size}"
              f", {result['precision']} on {result['runtime']}"
              f"{', TTA x' + str(tta.passes) if tta else ''}"
              f"{f', prior correction {prior:g}' if prior else ''}")
        print(format_table(result, result["class_names"]))
    seen = result.get("seen_in_training")
    if seen:
        print(f"note: the checkpoint's weights were trained on {seen} of these "
              f"{result['frames']} frames (by its run or a run its --init-weights came "
              f"from); this is not a held-out score", file=sys.stderr)
    if args.save_vis:
        print(_vis_message(args.save_vis, result), file=sys.stderr)
    return 0


def _vis_message(folder: str, result: dict) -> str:
    """Say where the --save-vis pictures are, and which were not written (warned above)."""
    pictures = result.get("vis_pictures") or {}
    short = []
    if pictures.get("not_written"):
        wanted = pictures["written"] + pictures["not_written"]
        short.append(f"{pictures['written']} of {wanted} frame pictures")
    if result.get("chart_error"):
        short.append("charts not drawn")
    if not short:
        return f"visualisations written to {folder}"
    return f"visualisations written to {folder}: {', '.join(short)} (see the warnings above)"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="canet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.func, args)


if __name__ == "__main__":
    from .sigterm import exit_quietly
    exit_quietly(main, EXIT_INTERRUPTED)

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

"""``canet extract-frames``: frames worth labelling out of a bag, pre-labelled (own_data.md)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .argtypes import checkpoint_spec, device, resolution

PROG = "canet extract-frames"


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0.0 or value == float("inf"):  # also rejects nan
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of at least 0")
    return value


def _grey_levels(text: str) -> float:
    # Above 255 no two thumbnails differ by enough: every frame after the first is skipped.
    value = _non_negative(text)
    if value > 255.0:
        raise argparse.ArgumentTypeError(f"{text!r} is more than 255, the largest difference "
                                         "of two grey levels")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from . import positive_int
    from .choices import BACKBONES

    p = subparsers.add_parser(
        "extract-frames", help="pick frames worth labelling out of a bag, with pre-labels",
        description="Write frames of an image topic spread over the recording (near-duplicates "
                    "skipped), named <sec>_<nanosec>.png by their header stamps, with a "
                    "model's labels as pre-labels: OUT/images/, OUT/prelabels/ (index masks), "
                    "OUT/cvat/ and OUT/cvat.zip (a CVAT 'Segmentation mask 1.1' package to "
                    "upload as annotations), OUT/classes.yaml and OUT/extract.json. "
                    "docs/own_data.md has the labelling round trip.")
    p.add_argument("input", metavar="INPUT",
                   help="ROS 2 bag folder, .mcap or .db3 file, ROS 1 .bag, or 'sample'")
    p.add_argument("--topic", help="image topic (default: the only Image/CompressedImage topic)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="new output folder")
    p.add_argument("--max", type=positive_int, default=50, metavar="N", dest="max_frames",
                   help="at most N frames, one per 1/N of the recording (default 50)")
    p.add_argument("--min-interval", type=_non_negative, default=1.0, metavar="SEC",
                   help="at least SEC seconds between frames (default 1.0)")
    p.add_argument("--duplicate-threshold", type=_grey_levels, default=4.0, metavar="D",
                   help="skip a frame whose 32x24 grey thumbnail differs from a kept one's by "
                        "less than D grey levels on average (0-255; default 4; 0 keeps all)")
    p.add_argument("--checkpoint", type=checkpoint_spec, default="default",
                   help="model for the pre-labels and the class list ('default' = the bundled "
                        "CamVid model)")
    p.add_argument("--backbone", choices=BACKBONES, help="must match the checkpoint when given")
    p.add_argument("--resolution", type=resolution, metavar="WxH",
                   help="network input size (default: the checkpoint's)")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-prelabels", action="store_true",
                   help="frames only, no model run (the classes still come from --checkpoint)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DIR if an earlier extract-frames wrote it (never one holding "
                        "labelled masks/ or anything else it did not write)")
    p.add_argument("--no-salvage", action="store_true",
                   help="refuse a damaged bag instead of reading what is still readable")
    p.add_argument("--json", action="store_true", help="print extract.json's summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> Any:
    from ..bag import SAMPLE_BAG, SAMPLE_GT_TOPIC, BagError
    from ..bag.extract import ExtractOptions
    from ..bag.sample import SAMPLE_NAME

    source, exclude = Path(args.input), ()
    if args.input == SAMPLE_NAME:
        if not (SAMPLE_BAG / "metadata.yaml").is_file():
            raise BagError(f"{SAMPLE_BAG}: the bundled sample bag is missing from this "
                           f"installation")
        source, exclude = SAMPLE_BAG, (SAMPLE_GT_TOPIC,)
    return ExtractOptions(
        source=source, outdir=args.out, topic=args.topic, max_frames=args.max_frames,
        min_interval=args.min_interval, duplicate_threshold=args.duplicate_threshold,
        prelabels=not args.no_prelabels, overwrite=args.overwrite,
        salvage=not args.no_salvage, progress=not args.no_progress, exclude_topics=exclude)


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("source", "topic", "messages", "span_s", "examined", "duplicates_skipped",
            "prelabels", "interrupted")
    out = {k: report[k] for k in keys}
    out["frames"] = len(report["frames"])
    out["stems"] = [f["stem"] for f in report["frames"]]
    out["skipped"] = len(report["skipped"])
    return out


def _check_mask_limit(checkpoint: Any) -> None:
    """Refuse, before anything is written, classes that a dataset's uint8 masks cannot hold."""
    from ..checkpoint import (
        CheckpointError,
        class_set_from_metadata,
        read_checkpoint,
        resolve_checkpoint,
    )
    from ..data.classes_file import mask_limit_problem

    try:
        classes = class_set_from_metadata(read_checkpoint(checkpoint))
    except CheckpointError:
        return  # said where it always was: after the bag and output folder checks
    problem = mask_limit_problem(classes.num_classes, classes.ignore_index)
    if problem:
        raise CheckpointError(f"{resolve_checkpoint(checkpoint)}: {problem}; extract-frames "
                              f"needs a checkpoint whose classes fit them")


def run(args: argparse.Namespace) -> int:
    from ..bag.extract import extract_frames

    options = _options(args)
    _check_mask_limit(args.checkpoint)

    def engine() -> Any:
        from ..inference import SegmentationEngine

        return SegmentationEngine(args.checkpoint, backbone=args.backbone, device=args.device,
                                  resolution=args.resolution, output_size="input")

    report = extract_frames(options, None if args.no_prelabels else engine, args.checkpoint)
    if not report["frames"] and report["skipped"] and not report.get("interrupted"):
        # Nothing usable: an error, as a topic with no messages is, with the reason.
        print(f"{PROG}: error: {options.source}: none of the {len(report['skipped'])} "
              f"messages on {report['topic']} could be used (first: "
              f"{report['skipped'][0]['reason']}); {args.out} holds no frames",
              file=sys.stderr)
        return 1
    if report.get("damage"):
        print(f"{PROG}: warning: {options.source}: damaged bag ({report['damage']['cause']}); "
              f"extracted from what is readable", file=sys.stderr)
    if args.json:
        print(json.dumps(_summary(report), indent=2))
    else:
        print(f"frames: {len(report['frames'])} written to {args.out} from "
              f"{report['messages']} messages over {report['span_s']:.1f} s "
              f"({report['duplicates_skipped']} near-duplicates skipped, "
              f"{len(report['skipped'])} undecodable)")
        if report["prelabels"]:
            print(f"pre-labels: {args.out / 'prelabels'}; for CVAT: {args.out / 'cvat.zip'}")
        print(f"next: label them (docs/own_data.md), then canet dataset import-cvat EXPORT "
              f"--into {args.out}")
    if report.get("interrupted"):
        print(f"{PROG}: interrupted after {len(report['frames'])} frames; {args.out} holds "
              f"them", file=sys.stderr)
        return 130
    return 0

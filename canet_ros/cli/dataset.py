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

"""``canet dataset``: check a dataset folder; import a CVAT export into one (docs/own_data.md)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "canet dataset"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dataset", help="check a dataset folder of your own; import CVAT exports into it",
        description="Datasets of your own: DIR/classes.yaml, DIR/images/, DIR/masks/ and "
                    "optional DIR/train.txt, DIR/val.txt (docs/own_data.md).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check", help="read every frame and mask and list every problem",
        description="Check a dataset folder (or a CVAT 'Segmentation mask 1.1' export "
                    "folder): classes.yaml, images without masks and masks without images, "
                    "sizes, class ids, colours, train/val lists, empty splits. Exit 0 with a "
                    "summary (frames per split, pixels per class), 1 listing every problem.")
    check.add_argument("root", metavar="DIR", type=Path, help="the dataset folder")
    check.add_argument("--json", action="store_true", help="the summary as JSON")
    check.set_defaults(func=run_check)
    imp = sub.add_parser(
        "import-cvat", help="turn a CVAT 'Segmentation mask 1.1' export into DIR/masks/",
        description="Convert the colour masks of a CVAT 'Segmentation mask 1.1' export (the "
                    ".zip or its unpacked folder) into index masks DIR/masks/<stem>.png, "
                    "labels matched to DIR/classes.yaml by name (CVAT's 'background' = "
                    "ignored). Every mask is checked before anything is written.")
    imp.add_argument("export", metavar="EXPORT", type=Path, help="the export .zip or folder")
    imp.add_argument("--into", required=True, type=Path, metavar="DIR",
                     help="the extract-frames folder (its images/ and classes.yaml)")
    imp.add_argument("--overwrite", action="store_true",
                     help="replace the labelling an earlier import wrote: masks of frames "
                          "this export does not have (deleted in CVAT) are moved to "
                          "DIR/masks_removed/")
    imp.add_argument("--keep-other-masks", action="store_true",
                     help="with --overwrite, keep the masks of frames this export does not "
                          "have (an export of only some frames, e.g. one of several tasks)")
    imp.add_argument("--json", action="store_true", help="the summary as JSON")
    imp.set_defaults(func=run_import)


def run_check(args: argparse.Namespace) -> int:
    from ..data.folder import check_dataset

    summary = check_dataset(args.root)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print("\n".join(["ok: " + summary.lines()[0], *summary.lines()[1:]]))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..data.cvat_import import import_cvat

    result = import_cvat(args.export, args.into, overwrite=args.overwrite,
                         keep_other_masks=args.keep_other_masks)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"masks: {result['masks']} written to {args.into / 'masks'}")
    if result["wrote_classes_yaml"]:
        print(f"classes: {', '.join(result['classes'])} (from labelmap.txt; written to "
              f"{args.into / 'classes.yaml'})")
    if result["unlabelled_frames"]:
        print(f"{PROG} import-cvat: warning: {result['unlabelled_frames']} frames have no "
              f"labelled pixel (left unannotated in CVAT?); they teach nothing",
              file=sys.stderr)
    for line in result["warnings"]:
        print(f"{PROG} import-cvat: warning: {line}", file=sys.stderr)
    print(f"next: canet dataset check {args.into}")
    return 0

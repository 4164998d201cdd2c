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

"""``canet segment-bag``: segment a recorded bag offline and score it (docs/segment_bag.md)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import EXIT_INTERRUPTED, error_text, run_command
from .argtypes import checkpoint_spec, device, resolution

PROG = "canet segment-bag"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from .choices import BACKBONES

    p = subparsers.add_parser(
        "segment-bag", help="segment the images of a ROS 1 / ROS 2 bag into a new ROS 2 bag",
        description="Run CANet on every frame of an image topic and write what the ROS node "
                    "would publish (labels, colour mask, overlay) to a new ROS 2 bag, with a "
                    "report (fps, mIoU against ground truth). No ROS installation needed. "
                    "INPUT 'sample' is the bundled CamVid sample bag with its ground truth.")
    p.add_argument("input", metavar="INPUT",
                   help="ROS 2 bag folder, .mcap or .db3 file, ROS 1 .bag, a folder of bags "
                        "(split across torchrun ranks), or 'sample'")
    p.add_argument("--topic", help="image topic (default: the only Image/CompressedImage topic)")
    gt = p.add_mutually_exclusive_group()
    gt.add_argument("--gt-topic", metavar="G",
                    help="mono8/mono16 label images in the bag, matched by header stamp")
    gt.add_argument("--gt-dir", metavar="D", type=Path,
                    help="label PNGs named <sec>_<nanosec>.png, <stamp_ns>.png or <index>.png")
    p.add_argument("--checkpoint", type=checkpoint_spec, default="default",
                   help="checkpoint file ('default' = the bundled CamVid model)")
    p.add_argument("--backbone", choices=BACKBONES, help="must match the checkpoint when given")
    p.add_argument("--resolution", metavar="WxH", type=resolution,
                   help="network input size (default: the checkpoint's)")
    p.add_argument("--device", default="auto", type=device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16", "int8"),
                   default="auto", help="fp16: CUDA only; bf16, int8: CPU only, where the CPU "
                   "has the instructions; auto (default): on the CPU the fastest precision "
                   "within the accuracy rule (docs/performance.md; int8 once its calibration "
                   "is cached), on CUDA fp32")
    p.add_argument("--class-colors", metavar="FILE",
                   help="class colours YAML (class name: [R, G, B] or '#rrggbb', any of the "
                        "model's classes) for the colour, overlay, video legend and report; "
                        "the rest keep the checkpoint's colours (docs/segment_bag.md)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the predictions of each frame and "
                        "its mirror image (2x the model time; offline only)")
    p.add_argument("--out", required=True, type=Path, metavar="OUTDIR",
                   help="new folder for the output bag, report and video")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                   help="output bag storage (default mcap)")
    p.add_argument("--compression", choices=("none", "lz4", "zstd"),
                   help="MCAP chunk compression of the output bag (default zstd; sqlite3 "
                        "output is uncompressed)")
    p.add_argument("--video", action="store_true",
                   help="also write a browser-playable overlay video with a legend "
                        "(H.264 MP4 through PyAV)")
    p.add_argument("--copy-input", action="store_true", help="copy the input topic into the "
                   "output bag too")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTDIR if an earlier segment-bag run wrote it")
    p.add_argument("--no-salvage", action="store_true",
                   help="refuse a damaged bag instead of segmenting what is still readable")
    p.add_argument("--json", action="store_true",
                   help="print the main figures as JSON on stdout (all of them: report.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def _device(spec: str) -> str:
    """Under torchrun, 'auto' means this process's own GPU (LOCAL_RANK)."""
    if spec != "auto" or "LOCAL_RANK" not in os.environ:
        return spec
    import torch

    if not torch.cuda.is_available():
        return spec
    return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"


def _engine_factory(args: argparse.Namespace) -> Any:
    def build() -> Any:
        from ..inference import SegmentationEngine

        return SegmentationEngine(args.checkpoint, backbone=args.backbone,
                                  device=_device(args.device), precision=args.precision,
                                  resolution=args.resolution, output_size="input",
                                  tta=args.tta, class_colors=args.class_colors)
    return build


def _options(args: argparse.Namespace) -> Any:
    from ..bag import SAMPLE_BAG, SAMPLE_GT_TOPIC, BagError, SegmentOptions
    from ..bag.sample import SAMPLE_NAME

    source, gt_topic, implied = Path(args.input), args.gt_topic, False
    if args.input == SAMPLE_NAME:
        if not (SAMPLE_BAG / "metadata.yaml").is_file():
            raise BagError(f"{SAMPLE_BAG}: the bundled sample bag is missing from this "
                           f"installation")
        source = SAMPLE_BAG
        if gt_topic is None and args.gt_dir is None:
            gt_topic, implied = SAMPLE_GT_TOPIC, True
    return SegmentOptions(
        source=source, outdir=args.out, topic=args.topic, gt_topic=gt_topic, gt_dir=args.gt_dir,
        storage=args.storage, compression=args.compression, video=args.video,
        copy_input=args.copy_input, overwrite=args.overwrite, progress=not args.no_progress,
        salvage=not args.no_salvage, gt_topic_implied=implied)


def _print_summary(report: dict[str, Any], outdir: Path) -> None:
    from ..bag.report_md import MAX_REGIONS, damage_lines

    def num(value: Any, fmt: str = ".2f") -> str:
        return "n/a" if value is None else format(value, fmt)

    if "frames" not in report:  # a rank other than 0: its bags only, rank 0 merges
        _print_rank_bags(report)
        return
    skipped = (report.get("skipped") or {}).get("count", 0)
    lost = report.get("frames_lost", 0)
    lost_text = "" if lost == 0 else f", {'an unknown number' if lost is None else lost} lost"
    print(f"frames: {report.get('frames')} written, {skipped} skipped{lost_text}"
          f"{' (interrupted)' if report.get('interrupted') else ''}")
    print(f"fps: {num(report.get('fps'))} end to end, model {num(report.get('model_fps'))} "
          f"(ratio {num(report.get('fps_ratio'))})")
    model = report.get("model") or {}
    if model.get("precision"):
        print(f"precision: {model['precision']} on {model.get('runtime')}")
    if report.get("miou") is not None:
        print(f"mIoU: {100 * report['miou']:.2f} %, global accuracy "
              f"{100 * report['global_acc']:.2f} %")
        if report.get("accuracy_note"):
            print(f"  {report['accuracy_note']}")
    unusable = (report.get("ground_truth") or {}).get("frames_gt_unusable") or {}
    if unusable:  # not scored: without this line an all-unusable run shows no accuracy
        reasons = "; ".join(f"{n} x {reason}" for reason, n in list(unusable.items())[:3])
        count = sum(unusable.values())
        print(f"ground truth unusable on {count} frame{'' if count == 1 else 's'}, not scored: "
              f"{reasons}{'; ...' if len(unusable) > 3 else ''}")
    if report.get("damage"):
        lines = damage_lines(report["damage"])
        print("damaged input: " + lines[0])
        for line in lines[1:1 + MAX_REGIONS]:
            print("  " + line)
    labels = {"output_bag": "output bag", "report_md": "report", "report_json": "report (JSON)",
              "legend": "colour legend", "iou_chart": "IoU chart", "video": "video"}
    for key, path in _written(report, outdir).items():
        if path:
            print(f"{labels[key]}: {path}")


def _written(report: dict[str, Any], outdir: Path) -> dict[str, Any]:
    """Return the files the run wrote; a video whose encoder failed is none (warned about)."""
    from ..bag.report_md import written_files

    files = written_files(report, outdir)
    if (report.get("video") or {}).get("error"):
        files["video"] = None
    return files


def _print_rank_bags(report: dict[str, Any]) -> None:
    # On stderr: stdout holds rank 0's summary alone (torchrun joins the ranks' streams).
    for bag in report.get("bags", []):
        print(f"rank {report.get('rank')}: {bag['bag']}: {bag['status']}", file=sys.stderr)


def _warn_damage(report: dict[str, Any]) -> None:
    """Say on stderr that a bag was salvaged or the video failed, whatever the output format."""
    damaged = report.get("damaged") or ([{
        "bag": report.get("input"), "cause": report["damage"]["cause"],
        "frames": report.get("frames"), "frames_lost": report.get("frames_lost"),
        "topic": report.get("topic")}] if report.get("damage") else [])
    for bag in damaged:
        lost = bag["frames_lost"]
        print(f"{PROG}: warning: {bag['bag']}: damaged bag ({bag['cause']}); segmented what "
              f"is readable: {bag['frames']} frames, "
              f"{'an unknown number' if lost is None else lost} on {bag['topic']} lost; "
              f"its report.md says which time ranges and why", file=sys.stderr)
    for note in ((report.get("video") or {}).get("note"), report.get("ground_truth_note")):
        if note:
            print(f"{PROG}: warning: {note}", file=sys.stderr)
    video = report.get("video") or {}
    if video.get("error"):
        path = Path(video["path"]) if video.get("path") else None  # None: no frame encoded
        if path is not None and path.is_file():
            print(f"{PROG}: warning: the video encoder failed ({video['error']}); {path} "
                  f"stops after {video['frames']} frames", file=sys.stderr)
        else:
            print(f"{PROG}: warning: no video was written ({video['error']})",
                  file=sys.stderr)


def _run_single(args: argparse.Namespace, options: Any) -> dict[str, Any]:
    from ..bag import BagJob

    job = BagJob(options)  # every input/output check before the (slow) model load
    try:
        return job.run(_engine_factory(args)())
    finally:
        job.close()


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from ..bag import run_folder
    from ..bag.distributed import RankInfo
    from ..bag.salvage import storage_files
    from ..class_colors import read_class_colors

    if args.class_colors:  # checked now, before the model loads; its names once it has
        args.class_colors = read_class_colors(args.class_colors)
    options = _options(args)
    source = options.source
    if (source.is_dir() and not (source / "metadata.yaml").exists()
            and storage_files(source) is None):
        info = RankInfo.from_env()
        report = run_folder(source, options, _engine_factory(args), info)
        if info.rank != 0:
            failed = [b for b in report["bags"] if b["status"] != "ok"]
            report["interrupted"] = any(b["status"] == "interrupted" for b in failed)
            report["error"] = "; ".join(b["error"] for b in failed if b.get("error")) or None
            report["previous_output_kept"] = "; ".join(
                b["previous_output_kept"] for b in failed if b.get("previous_output_kept")
            ) or None
        return report
    info = RankInfo.from_env()
    if info.rank != 0:  # one bag: rank 0 does it, the others have nothing to do
        return {"rank": info.rank, "bags": [], "interrupted": False, "error": None}
    return _run_single(args, options)


def run(args: argparse.Namespace) -> int:
    # SIGTERM (torchrun's, when another rank died) stops it as Ctrl-C: run_command, .sigterm.
    from ..bag import BagError
    from ..checkpoint import CheckpointError
    from ..class_colors import ClassColorsError

    errors: tuple[type[BaseException], ...] = (BagError, CheckpointError, ClassColorsError,
                                               OSError)
    try:
        from ..inference import EngineError

        errors += (EngineError,)
    except ImportError:
        pass
    try:
        report = _run(args)
    except errors as exc:
        print(f"{PROG}: error: {error_text(exc, args)}", file=sys.stderr)
        return 1
    from ..bag.report_md import short_report

    kept = report.get("previous_output_kept")
    _warn_damage(report)
    if args.json and "frames" not in report and "rank" in report:
        _print_rank_bags(report)  # only rank 0 prints the (merged) JSON object
    elif args.json:
        short = short_report(report, args.out) if "frames" in report else report
        if "files" in short:
            short = {**short, "files": _written(report, args.out)}
        if report.get("model"):  # what ran: precision auto as resolved, and its runtime
            short = {**short, "model": report["model"]}
        if kept:  # this run's files are gone: name none of them
            short = {**short, "files": None, "previous_output_kept": kept}
        print(json.dumps(short, indent=2))
    elif not kept:
        _print_summary(report, args.out)
    if report.get("error"):
        print(f"{PROG}: error: {report['error']}", file=sys.stderr)
    if kept:
        print(f"{PROG}: {'interrupted' if report.get('interrupted') else 'failed'}: {kept} "
              f"still holds the earlier run's output, unchanged; this run's was not kept",
              file=sys.stderr)
    if report.get("error") and "frames" not in report and not report.get("interrupted"):
        # A rank other than 0 that got through its bags: its failures are in its done file
        # and rank 0's merged report and exit status. A nonzero exit here would make torchrun
        # stop rank 0 and the others in the middle of their bags.
        print(f"{PROG}: rank {report.get('rank')}: its failed bags are listed in the merged "
              f"report rank 0 writes", file=sys.stderr)
        return 0
    if report.get("error"):
        return 1
    if report.get("interrupted"):
        if not kept and "frames" in report:
            print(f"{PROG}: interrupted after {report['frames']} frames; the output bag "
                  f"is closed and the report says how far it got", file=sys.stderr)
        elif not kept:  # a rank other than 0: its bags' own reports say how far they got
            print(f"{PROG}: interrupted (rank {report.get('rank')}); its bags' reports say how "
                  f"far they got", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m canet_ros.cli.segment_bag ARGS`` (what torchrun starts per rank)."""
    parser = argparse.ArgumentParser(prog="canet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["segment-bag", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.func, args, PROG)


if __name__ == "__main__":
    from .sigterm import exit_quietly
    exit_quietly(main, EXIT_INTERRUPTED)

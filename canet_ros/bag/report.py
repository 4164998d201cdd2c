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

"""Run statistics -> report.json, report.md and a per-class IoU chart; merging of reports."""
from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import ConfusionMatrix, clean_json
from .errors import BagError
from .report_md import render_markdown

CHART = "iou.png"
LEGEND = "legend.png"
VIDEOS = ("overlay.mp4", "overlay.webm")  # video.py's OverlayVideo, either format
MAX_REASONS = 20
MAX_EXAMPLES = 20
# Characters of one reason. The codec quotes fields shortened, but a reason may still quote
# something of the bag's choosing: 30 messages with distinct 1 MB encodings made a 40 MB
# report.json. The middle goes, so a long path keeps its file name.
MAX_REASON_CHARS = 1000

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """Filled by the three pipeline threads; each field has one writer thread."""

    frames_total: int
    frames: int = 0  # writer: frames whose outputs are in the bag
    infer_s: list[float] = field(default_factory=list)  # main: engine.infer wall time
    latency_s: list[float] = field(default_factory=list)  # writer: read start -> written
    skipped: Counter[str] = field(default_factory=Counter)  # reader
    skipped_examples: list[dict[str, Any]] = field(default_factory=list)
    gt_scored: int = 0  # writer: all four, for frames whose outputs are in the bag
    gt_missing: int = 0
    gt_unusable: Counter[str] = field(default_factory=Counter)
    gt_frames: list[dict[str, Any]] = field(default_factory=list)  # frames not scored, why
    confusion: ConfusionMatrix | None = None
    wall_s: float = 0.0
    interrupted: bool = False
    error: str | None = None
    last_timestamp: int | None = None  # writer: receive time of the last frame written

    def skip(self, index: int, timestamp: int, reason: str) -> None:
        reason = short_reason(reason)
        _count(self.skipped, reason)
        if len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append({"index": index, "timestamp": timestamp,
                                          "reason": reason})

    def gt_frame_missing(self, position: int | None, stamp: int, reason: str) -> None:
        reason = short_reason(reason)
        self.gt_missing += 1
        self.gt_frames.append({"position": position, "stamp_ns": stamp, "reason": reason})

    def gt_frame_problem(self, position: int | None, stamp: int, reason: str) -> None:
        reason = short_reason(reason)
        _count(self.gt_unusable, reason)
        self.gt_frames.append({"position": position, "stamp_ns": stamp, "reason": reason})


def short_reason(reason: str) -> str:
    """``reason`` if short enough, else its start and end with how much was left out."""
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    keep = MAX_REASON_CHARS // 2 - 40
    return (f"{reason[:keep]} ... ({len(reason) - 2 * keep} characters left out) ... "
            f"{reason[-keep:]}")


def _count(counter: Counter[str], reason: str) -> None:
    """Count by reason, but never let thousands of distinct messages flood the report."""
    counter[reason if len(counter) < MAX_REASONS or reason in counter else "other"] += 1


def _quantiles_ms(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(np.asarray(values, np.float64) * 1000.0, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def accuracy_fields(cm: ConfusionMatrix, class_names: Sequence[str]) -> dict[str, Any]:
    summary = cm.summary(class_names)
    return {"miou": summary["miou"], "global_acc": summary["global_acc"],
            "per_class": summary["per_class"], "pixels": summary["pixels"],
            "confusion_matrix": cm.matrix.tolist(),
            "confusion_unmatched": cm.unmatched.tolist()}


def timing_fields(stats: RunStats) -> dict[str, Any]:
    infer_total = float(sum(stats.infer_s))
    fps = _ratio(stats.frames, stats.wall_s)
    model_fps = _ratio(len(stats.infer_s), infer_total)
    return {"fps": fps, "model_fps": model_fps,
            "fps_ratio": _ratio(fps, model_fps) if fps and model_fps else None,
            "latency_ms": _quantiles_ms(stats.latency_s),
            "infer_ms": {**_quantiles_ms(stats.infer_s),
                         "mean": round(1000 * infer_total / len(stats.infer_s), 3)
                         if stats.infer_s else None},
            "wall_s": round(stats.wall_s, 6), "infer_s": round(infer_total, 6)}


def engine_fields(engine: Any) -> dict[str, Any]:
    """Describe the model for the report, as read from the engine the run used."""
    resolution = getattr(engine, "resolution", None)
    checkpoint = getattr(engine, "checkpoint_path", None)
    return {
        "model": {"backbone": engine.backbone, "class_set": engine.class_set.name,
                  "num_classes": engine.num_classes,
                  "resolution": f"{resolution[0]}x{resolution[1]}" if resolution else None,
                  "precision": getattr(engine, "precision", None),  # auto as resolved
                  "runtime": getattr(engine, "runtime", None),
                  "tta": bool(getattr(engine, "tta", False))},
        "checkpoint": str(checkpoint) if checkpoint else None,
        "device": getattr(engine, "device_name", None) or str(getattr(engine, "device", "")),
    }


def build_report(stats: RunStats, job: dict[str, Any], model: dict[str, Any],
                 class_names: Sequence[str], ignore_index: int | None,
                 palette: np.ndarray | None = None) -> dict[str, Any]:
    skipped = sum(stats.skipped.values())
    report: dict[str, Any] = dict(job)
    report.update(model)
    report.update({
        "frames": stats.frames, "frames_in_topic": stats.frames_total,
        "complete": (not stats.interrupted and stats.error is None
                     and stats.frames + skipped == stats.frames_total
                     and job.get("frames_lost", 0) == 0),
        "interrupted": stats.interrupted, "error": stats.error,
        "last_timestamp": stats.last_timestamp,
        **timing_fields(stats),
        "skipped": {"count": skipped, "reasons": dict(stats.skipped),
                    "examples": stats.skipped_examples},
        "class_names": list(class_names), "ignore_index": ignore_index,
        # RGB per class, in class order: the colour mask, overlay and legend colours
        "palette": np.asarray(palette, np.uint8).reshape(-1, 3).tolist()
        if palette is not None else None,
    })
    if stats.confusion is not None:
        report["ground_truth"]["frames_with_gt"] = stats.gt_scored
        report["ground_truth"]["frames_without_gt"] = stats.gt_missing
        report["ground_truth"]["frames_gt_unusable"] = dict(stats.gt_unusable)
        report["ground_truth"]["frames_not_scored"] = sorted(
            stats.gt_frames, key=lambda f: (f["stamp_ns"], f["position"] or 0))
        report.update(accuracy_fields(stats.confusion, class_names))
    return clean_json(report)


def write_report(report: dict[str, Any], outdir: Path, title: str) -> dict[str, Any]:
    """report.json, report.md and (with ground truth) iou.png; returns the final report.

    A report that cannot be written takes the run's other files in ``outdir`` with it
    (legend, chart, video): cut short by a full disk, they must not pass for a run's.
    """
    report = dict(report)
    report["chart"] = None
    report["legend"] = _write_legend(report, outdir)
    if report.get("per_class"):
        _write_chart(report, outdir, title)
    report = clean_json(report)
    try:
        (outdir / "report.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
        # A file name may hold bytes that are not UTF-8 (lone surrogates in Python): written
        # as \udcff escapes, as report.json has them, so report.md stays valid UTF-8.
        (outdir / "report.md").write_text(render_markdown(report), "utf-8", "backslashreplace")
    except OSError as exc:
        _remove_report(outdir)  # cut files (0 bytes on a full disk) must not pass for a report
        raise BagError(f"{outdir}: cannot write the report ({exc.strerror or exc})"
                       f"{_video_failure(report)}") from None
    if report.get("chart_error"):  # said once the scores are there to be complete
        # Named where it would have been: a run with --overwrite writes a staging folder.
        final = Path(report["output_bag"]).parent if report.get("output_bag") else outdir
        log.warning("%s not drawn (%s); the scores are complete (report.md, report.json)",
                    final / CHART, report["chart_error"])
    return report


def _write_chart(report: dict[str, Any], outdir: Path, title: str) -> None:
    """iou.png, or the reason it is not there in ``chart_error`` (write_report warns)."""
    try:
        from ..visualize import save_iou_bar_chart

        save_iou_bar_chart(report["per_class"], outdir / CHART, title=title,
                           class_names=report.get("class_names"))
        report["chart"] = CHART
    except Exception as exc:  # a chart must never cost the numbers
        with contextlib.suppress(OSError):
            (outdir / CHART).unlink(missing_ok=True)  # cut short by a full disk
        report["chart_error"] = f"{type(exc).__name__}: {exc}"


def _video_failure(report: dict[str, Any]) -> str:
    """Say why the video stopped, where it did: on a full disk it failed before the report."""
    error = (report.get("video") or {}).get("error")
    if not error:
        return ""
    from .video import NO_FRAMES

    return "" if error == NO_FRAMES else f"; the video had failed before it ({error})"


def _remove_report(outdir: Path) -> None:
    for name in ("report.json", "report.md", LEGEND, CHART, *VIDEOS):
        try:
            (outdir / name).unlink(missing_ok=True)
        except OSError:
            pass  # nothing better to do: the error about the report is raised next


def _write_legend(report: dict[str, Any], outdir: Path) -> str | None:
    """legend.png: each class's colour swatch and name, as report.md shows it."""
    if not report.get("palette") or not report.get("class_names"):
        return None
    from ..image_files import write_image
    from .video import render_legend

    try:
        image = render_legend(report["class_names"], np.asarray(report["palette"], np.uint8),
                              480)
        return LEGEND if write_image(outdir / LEGEND, image) else None
    except Exception:  # a picture must never cost the numbers; report.md lists the colours
        return None


def merge_confusion(reports: Sequence[dict[str, Any]]) -> ConfusionMatrix | None:
    scored = [r for r in reports if r.get("confusion_matrix") is not None]
    if not scored:
        return None
    matrix = np.asarray(scored[0]["confusion_matrix"], np.int64)
    cm = ConfusionMatrix(matrix.shape[0], scored[0].get("ignore_index"))
    for r in scored:
        cm.matrix += np.asarray(r["confusion_matrix"], np.int64)
        cm.unmatched += np.asarray(r["confusion_unmatched"], np.int64)
    return cm

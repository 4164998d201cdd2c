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

"""report.md, the command's text summary and its short ``--json`` (report.json has it all)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_LISTED = 20  # frames without ground truth listed in report.md; report.json lists all
MAX_REGIONS = 5  # lost regions in the summary and the short JSON; report.md lists all


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _num(value: Any, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _seconds(ns: int | None) -> str:
    return "?" if ns is None else f"{ns / 1e9:.3f}"


def _count(value: int | None) -> str:
    return "an unknown number of" if value is None else str(value)


def _lost(value: int | None) -> str:
    return "an unknown number" if value is None else str(value)


def _position(position: int | None) -> str:
    return "position unknown" if position is None else f"#{position}"


def _sentence(text: str) -> str:
    """``text`` ending in one full stop (causes often carry their own)."""
    return text.rstrip().rstrip(".") + "."


def damage_lines(damage: dict[str, Any]) -> list[str]:
    """Return what a salvaged bag lost: one line per region, then notes."""
    lines = [f"Read by {damage['method']}, because: {_sentence(damage['cause'])}"]
    for region in damage.get("regions", []):
        span = ""
        if region.get("start_ns") is not None or region.get("end_ns") is not None:
            span = (f", receive times {_seconds(region.get('start_ns'))} to "
                    f"{_seconds(region.get('end_ns'))} s")
        topics = region.get("topics")
        per_topic = (" (" + ", ".join(f"{n} on {t}" for t, n in topics.items()) + ")"
                     if topics else "")
        lines.append(f"- {_count(region.get('messages'))} messages lost{per_topic}{span}: "
                     f"{region['reason']}")
    lines += [f"- note: {note}" for note in damage.get("notes", [])]
    return lines


def _files(report: dict[str, Any]) -> list[str]:
    lines = []
    if report.get("output_bag"):
        size = report.get("output_size_bytes")
        lines.append(f"- output bag: `{report['output_bag']}` ({report.get('storage')}, "
                     f"compression {report.get('compression') or 'none'}"
                     f"{f', {size / 1e6:.2f} MB' if size is not None else ''})")
    video = report.get("video")
    if video and not video.get("path"):  # nothing was encoded, so no file to link
        lines.append(f"- video: none ({video.get('error')})")
    elif video:
        name = Path(video["path"]).name
        lines.append(f"- video: [{name}]({name}) ({video['format']}, {video['frames']} frames "
                     f"at {video['fps']:.3g} fps)"
                     f"{'; ' + video['note'] if video.get('note') else ''}"
                     f"{'; ERROR: ' + video['error'] if video.get('error') else ''}")
    return lines


def _gt_lines(report: dict[str, Any]) -> list[str]:
    gt = report["ground_truth"]
    lines = ["", "## Accuracy", "",
             f"Ground truth from {gt.get('source')}: {gt.get('frames_with_gt')} frames "
             f"scored, {gt.get('frames_without_gt')} without ground truth, "
             f"{sum((gt.get('frames_gt_unusable') or {}).values())} with unusable ground "
             f"truth.", "",
             f"mIoU {_pct(report.get('miou'))}, global accuracy "
             f"{_pct(report.get('global_acc'))}", ""]
    if report.get("accuracy_note"):
        lines += [f"Note: {report['accuracy_note']}.", ""]
    lines += ["| class | IoU |", "| --- | --- |"]
    per_class = report.get("per_class") or {}
    lines += [f"| {n} | {_pct(per_class.get(n))} |" for n in report.get("class_names", [])]
    if report.get("chart"):
        lines += ["", f"![per-class IoU]({report['chart']})"]
    missing = gt.get("frames_not_scored") or []
    if missing:
        lines += ["", "Frames not scored (header stamp, position on the topic, why):", ""]
        lines += [f"- {_seconds(f['stamp_ns'])} s, {_position(f['position'])}: {f['reason']}"
                  for f in missing[:MAX_LISTED]]
        if len(missing) > MAX_LISTED:
            lines.append(f"- ... {len(missing) - MAX_LISTED} more in report.json "
                         f"(ground_truth.frames_not_scored)")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# canet segment-bag report", ""]
    if "bags" in report:
        lines.append(f"- bags: {len(report['bags'])} merged from {report.get('world_size', 1)} "
                     f"process(es); failed: {len(report.get('failed', []))}; damaged (salvaged):"
                     f" {len(report.get('damaged', []))}")
    else:
        lines.append(f"- input: `{report.get('input')}`, topic `{report.get('topic')}`")
    lines += _files(report)
    model = report.get("model") or {}
    lines.append(f"- model: {model.get('backbone')} ({model.get('class_set')}, "
                 f"{model.get('num_classes')} classes) at {model.get('resolution')}, "
                 f"{model.get('precision')} on {report.get('device')}; checkpoint "
                 f"`{report.get('checkpoint')}`")
    skipped = report.get("skipped", {})
    lost = report.get("frames_lost", 0)
    lines.append(f"- frames: {report.get('frames')} written, {skipped.get('count', 0)} skipped"
                 f"{'' if lost == 0 else f', {_lost(lost)} lost in the damaged bag'}"
                 f"{'; INTERRUPTED' if report.get('interrupted') else ''}"
                 f"{'; ERROR: ' + str(report['error']) if report.get('error') else ''}")
    for reason, count in skipped.get("reasons", {}).items():
        lines.append(f"  - {count} x {reason}")
    lat = report.get("latency_ms") or {}
    lines.append(f"- throughput: {_num(report.get('fps'))} fps end to end, model "
                 f"{_num(report.get('model_fps'))} fps (ratio {_num(report.get('fps_ratio'))})")
    lines.append(f"- latency per frame, from reading the message to its outputs written: p50 "
                 f"{_num(lat.get('p50'), '.1f')} ms, p99 {_num(lat.get('p99'), '.1f')} ms. "
                 f"This includes queueing: a frame waits behind the frames decoded ahead of "
                 f"it, so the latency exceeds the time per frame (1 / fps).")
    if report.get("damage"):
        lines += ["", "## Damaged input", "", *damage_lines(report["damage"])]
    if report.get("ground_truth") and "miou" in report:
        lines += _gt_lines(report)
    elif report.get("ground_truth_note"):
        lines += ["", "## Accuracy", "", _sentence(report["ground_truth_note"])]
    lines += _colour_lines(report)
    return "\n".join(lines) + "\n"


def _colour_lines(report: dict[str, Any]) -> list[str]:
    """Return the colour legend of the colour mask, the overlay and the video."""
    palette, names = report.get("palette"), report.get("class_names")
    if not palette or not names:
        return []
    lines = ["", "## Colours", "", "The colour mask, the overlay and the video paint each "
             "class in its colour:", ""]
    if report.get("legend"):
        lines += [f"![colour legend]({report['legend']})", ""]
    lines += ["| class | colour (RGB) | hex |", "| --- | --- | --- |"]
    lines += [f"| {name} | {r}, {g}, {b} | #{r:02x}{g:02x}{b:02x} |"
              for name, (r, g, b) in zip(names, palette, strict=False)]
    return lines


def written_files(report: dict[str, Any], outdir: Path) -> dict[str, str | None]:
    """Return what the run wrote, for the text summary and the short JSON."""
    video = report.get("video") or {}
    return {"output_bag": report.get("output_bag"),
            "report_json": str((outdir / "report.json").resolve()),
            "report_md": str((outdir / "report.md").resolve()),
            "legend": str((outdir / report["legend"]).resolve()) if report.get("legend")
            else None,
            "iou_chart": str((outdir / report["chart"]).resolve()) if report.get("chart")
            else None,
            "video": video.get("path")}


_SHORT_KEYS = ("input", "topic", "frames", "frames_in_topic", "frames_lost", "complete",
               "interrupted", "error", "fps", "model_fps", "fps_ratio", "latency_ms",
               "miou", "global_acc", "accuracy_note", "ground_truth_note", "per_class",
               "storage", "compression", "output_size_bytes", "world_size", "failed")


def short_report(report: dict[str, Any], outdir: Path) -> dict[str, Any]:
    """Return the figures worth a glance; the confusion matrix and the lists stay in report.json."""
    out = {k: report[k] for k in _SHORT_KEYS if k in report}
    out["skipped"] = (report.get("skipped") or {}).get("count", 0)
    gt = report.get("ground_truth")
    if gt:
        out["ground_truth"] = {k: gt.get(k) for k in ("source", "frames_with_gt",
                                                      "frames_without_gt")}
    damage = report.get("damage")
    if damage:
        out["damage"] = {"cause": damage["cause"], "messages_lost": damage["messages_lost"],
                         "regions": [{k: r[k] for k in ("reason", "start_ns", "end_ns",
                                                        "messages")}
                                     for r in damage["regions"][:MAX_REGIONS]],
                         "more_regions": max(0, len(damage["regions"]) - MAX_REGIONS)}
    if "bags" in report:
        out["bags"] = [{"bag": b["bag"], "status": b["status"]} for b in report["bags"]]
    out["files"] = written_files(report, outdir)
    return out

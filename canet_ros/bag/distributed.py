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

"""A folder of bags across processes (``torchrun``): rank r of N takes every N-th bag.

Each bag goes to OUTDIR/<bag name>/ with its own report. Every rank then leaves a small
done file in OUTDIR/.segment_bag_ranks/; rank 0 waits for all of them (or uses
torch.distributed's barrier when a process group is already initialised), merges the
per-bag reports exactly (summed confusion matrices) into OUTDIR/report.json and removes
the done files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BagError
from .outdir import (
    LOCK,
    MARKER,
    NAME_MAX,
    OLD,
    PARTIAL,
    OutdirLock,
    StagedOutdir,
    check_not_around_inputs,
    claim_shared_outdir,
    fit_name,
)
from .pipeline import SegmentOptions, check_options, finish_staged, segment_bag
from .reader import describe_exception
from .report import CHART, LEGEND, accuracy_fields, clean_json, merge_confusion, write_report
from .salvage import storage_files
from .stages import sigint_deferred

RANKS_DIR = ".segment_bag_ranks"
STOPPED_WAIT_S = 10.0  # how long a stopped rank 0 waits for the others' done files
_LOG = logging.getLogger(__name__)
_BAG_SUFFIXES = (".mcap", ".db3", ".bag")
# What a run itself puts at OUTDIR's top level (report.py, video.py's overlay.<suffix>, the
# marker, the ranks' done files): a bag folder of one of these names would take its place.
OUTDIR_OWN = frozenset({"report.json", "report.md", LEGEND, CHART, "overlay.mp4",
                        "overlay.webm", MARKER, RANKS_DIR})


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> RankInfo:
        """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (or a process group's)."""
        dist = _process_group()
        if dist is not None:
            return cls(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", "0")))
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError as exc:
            raise BagError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({exc})") from None
        if world < 1 or not 0 <= rank < world:
            raise BagError(f"RANK={rank} is not within WORLD_SIZE={world}")
        return cls(rank, world, local)


def _process_group() -> Any:
    """Return torch.distributed where a process group is up, else None, importing nothing.

    Only a process that imported torch.distributed can have one; importing torch to ask
    would cost a cached CPU run (which needs no torch) about 480 MB.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def is_bag(path: Path) -> bool:
    if path.is_dir():  # a bag folder, or one whose metadata.yaml was never written
        return (path / "metadata.yaml").is_file() or storage_files(path) is not None
    return path.is_file() and path.suffix.lower() in _BAG_SUFFIXES


def find_bags(folder: Path) -> list[Path]:
    bags = sorted(p for p in folder.iterdir() if is_bag(p))
    if not bags:
        raise BagError(f"{folder}: not a ROS 2 bag folder (no metadata.yaml) and holds no "
                       f"bags (.mcap, .db3, .bag files or bag folders)")
    return bags


def _stem(bag: Path) -> str:
    return bag.stem if bag.is_file() else bag.name


def _places(name: str) -> tuple[str, ...]:
    # A bag's folder, and the ones beside it while a torchrun shard replaces an earlier run's.
    return (name, name + PARTIAL, name + OLD, name + LOCK)


def _fit(name: str) -> str:
    return fit_name(name, max_bytes=NAME_MAX - max(len(PARTIAL), len(OLD), len(LOCK)))


def output_names(bags: Sequence[Path]) -> dict[Path, str]:
    """Name each bag's OUTDIR sub-folder: its stem, unique and clear of OUTDIR's own files.

    Bags sharing a stem, or named like a file OUTDIR holds itself, get their format added;
    a name still taken is numbered, and one too long is shortened (fit_name).
    """
    stems = Counter(_stem(p) for p in bags)
    used: set[str] = set(OUTDIR_OWN)
    names: dict[Path, str] = {}
    for p in bags:
        base = _stem(p)
        if stems[base] > 1 or _fit(base) in OUTDIR_OWN:
            base = f"{base}_{p.suffix.lstrip('.') or 'dir'}"
        # cam.mcap's "cam_mcap" can be another bag's own stem (cam_mcap.db3): numbered then,
        # the same way in every rank (the bags come sorted).
        name, number = _fit(base), 2
        while not used.isdisjoint(_places(name)):
            name, number = _fit(f"{base}_{number}"), number + 1
        names[p] = name
        used.update(_places(name))
    return names


def _run_id() -> str:
    # torchrun sets TORCHELASTIC_RUN_ID; shards started by hand share CANET_RUN_ID, so rank 0
    # never merges done files that a crashed earlier run left behind.
    return os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("CANET_RUN_ID", "")


def _done_path(outdir: Path, rank: int) -> Path:
    return outdir / RANKS_DIR / f"rank-{rank}.json"


def _bag_options(template: SegmentOptions, bag: Path, name: str) -> SegmentOptions:
    gt_dir = template.gt_dir
    if gt_dir is not None and (gt_dir / name).is_dir():
        gt_dir = gt_dir / name  # per-bag ground truth: GT_DIR/<bag name>/
    final = template.final_outdir / name if template.final_outdir else None
    return dataclasses.replace(template, source=bag, outdir=template.outdir / name,
                               gt_dir=gt_dir, final_outdir=final)


def process_share(folder: Path, template: SegmentOptions, engine_factory: Callable[[], Any],
                  info: RankInfo, done: list[dict[str, Any]]) -> None:
    """Segment this rank's bags, appending one status entry per bag to ``done`` as it goes.

    A bag that fails does not stop the others; Ctrl-C stops after the current bag's report.
    """
    bags = find_bags(folder)
    names = output_names(bags)
    engine = None
    for bag in bags[info.rank::info.world_size]:
        entry: dict[str, Any] = {"bag": str(bag), "outdir": names[bag], "rank": info.rank,
                                 "reported": False}
        done.append(entry)
        try:
            if engine is None:
                engine = engine_factory()
            report = segment_bag(engine, _bag_options(template, bag, names[bag]))
        except KeyboardInterrupt:
            entry.update(status="interrupted", error=None)
            raise
        except Exception as exc:  # engine or bag: recorded, and the next bag is tried
            entry.update(status="failed", error=describe_exception(exc))
            continue
        status = "interrupted" if report["interrupted"] else "failed" if report["error"] else "ok"
        kept = report.get("previous_output_kept")
        # A run whose output was discarded (interrupted or failed over an earlier one) left
        # the earlier run's report.json there: not this run's to merge.
        entry.update(status=status, error=report["error"], reported=not kept,
                     frames=report.get("frames"), previous_output_kept=kept)
        if status == "interrupted":
            raise KeyboardInterrupt


def _write_done(outdir: Path, info: RankInfo, done: list[dict[str, Any]]) -> None:
    done_file = _done_path(outdir, info.rank)
    try:
        done_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = done_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"run_id": _run_id(), "world_size": info.world_size,
                                   "bags": done}), "utf-8")
        tmp.replace(done_file)  # atomic: rank 0 never reads half a file
    except OSError as exc:
        raise BagError(f"{done_file}: cannot write ({exc.strerror or exc})") from None


def _wait_for_ranks(outdir: Path, info: RankInfo, poll_s: float, limit_s: float | None = None
                    ) -> tuple[list[dict[str, Any]], list[int]]:
    """Return the ranks' bag entries, and the ranks that left no done file by ``limit_s``."""
    dist = _process_group() if limit_s is None else None
    if dist is not None:
        dist.barrier()
    deadline = None if limit_s is None else time.monotonic() + limit_s
    entries: dict[int, list[dict[str, Any]]] = {}
    while len(entries) < info.world_size and (deadline is None or time.monotonic() < deadline):
        for rank in range(info.world_size):
            if rank in entries:
                continue
            try:
                blob = json.loads(_done_path(outdir, rank).read_text("utf-8"))
            except (OSError, ValueError):
                continue  # not there yet, or being written
            if blob.get("run_id") == _run_id() and blob.get("world_size") == info.world_size:
                entries[rank] = blob["bags"]
        if len(entries) < info.world_size:
            time.sleep(poll_s)
    missing = [rank for rank in range(info.world_size) if rank not in entries]
    return [e for rank in sorted(entries) for e in entries[rank]], missing


def _open_outdir(root: Path, template: SegmentOptions, info: RankInfo
                 ) -> tuple[StagedOutdir | None, OutdirLock | None]:
    if info.world_size == 1:
        return StagedOutdir(root, template.overwrite), None  # the same rules as for one bag
    lock = OutdirLock(root)  # shared by this run's ranks, refused to any other run
    lock.acquire_shared(_run_id(), lambda: claim_shared_outdir(
        root, template.overwrite, _run_id(), leftovers={RANKS_DIR}))
    if not _run_id() and info.rank == 0:
        _LOG.warning("shards started without torchrun and without CANET_RUN_ID: a crashed "
                     "earlier run's files in %s could be merged; give every shard the "
                     "same CANET_RUN_ID", root / RANKS_DIR)
    return None, lock


def run_folder(folder: Path, template: SegmentOptions, engine_factory: Callable[[], Any],
               info: RankInfo | None = None, poll_s: float = 0.5) -> dict[str, Any]:
    """Run this rank's share of ``folder``; rank 0 returns the merged report."""
    info = info or RankInfo.from_env()
    check_options(template)  # as for one bag: before the model loads or OUTDIR is made
    check_not_around_inputs(template.outdir, [folder])
    find_bags(folder)  # no bags: say so before anything is created
    staged, lock = _open_outdir(template.outdir, template, info)
    try:
        if staged is not None and staged.staged:
            template = dataclasses.replace(template, outdir=staged.path,
                                           final_outdir=template.outdir)
        return _run_share(folder, template, engine_factory, info, poll_s, staged)
    finally:
        for held in (staged, lock):
            if held is not None:
                held.release()


def _run_share(folder: Path, template: SegmentOptions, engine_factory: Callable[[], Any],
               info: RankInfo, poll_s: float, staged: StagedOutdir | None) -> dict[str, Any]:
    root = template.outdir
    _done_path(root, info.rank).unlink(missing_ok=True)
    done: list[dict[str, Any]] = []
    interrupted = False
    try:
        process_share(folder, template, engine_factory, info, done)
    except KeyboardInterrupt:
        interrupted = True  # the bag's entry says so; rank 0 still needs this rank's done file
    finally:
        _write_done(root, info, done)
    if info.rank != 0:
        return {"rank": info.rank, "bags": done}
    # Stopped (Ctrl-C, or torchrun's SIGTERM after another rank died): a dead rank never
    # leaves its file, and torchrun kills what still runs 30 s after its SIGTERM.
    entries, missing = _wait_for_ranks(root, info, poll_s,
                                       STOPPED_WAIT_S if interrupted else None)
    with sigint_deferred("canet segment-bag: writing the merged report"):
        merged = merge_reports(root, entries, info.world_size)
        if interrupted or missing:
            merged.update(interrupted=True, ranks_missing=missing)
        for rank in range(info.world_size):
            _done_path(root, rank).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # another run may still be using it
            (root / RANKS_DIR).rmdir()
        title = f"{folder.name}: per-class IoU, {len(entries)} bags"
        try:
            report = write_report(merged, root, title)
        except BagError as exc:
            if staged is None or not staged.staged:
                raise
            # The bags' outputs are in the staged folder: without its report it is no run.
            return finish_staged(staged, {**merged, "error": "; ".join(
                e for e in (merged.get("error"), str(exc)) if e)})
        return finish_staged(staged, report) if staged is not None else report


def _bag_reports(root: Path, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    reports = []
    for entry in entries:
        if not entry.get("reported"):
            continue  # failed before its report: an older report.json there is not this run's
        path = root / entry["outdir"] / "report.json"
        try:
            report = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue  # the bag failed before its report was written
        report["_rank"] = entry["rank"]
        reports.append(report)
    return reports


def _merged_timing(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate throughput: ranks run in parallel, bags within a rank one after another."""
    wall: Counter[int] = Counter()
    frames: Counter[int] = Counter()
    infer: Counter[int] = Counter()
    for r in reports:
        wall[r["_rank"]] += r.get("wall_s") or 0.0
        frames[r["_rank"]] += r.get("frames") or 0
        infer[r["_rank"]] += r.get("infer_s") or 0.0
    total = sum(frames.values())
    fps = total / max(wall.values()) if wall and max(wall.values()) > 0 else None
    model_fps = sum(frames[k] / infer[k] for k in infer if infer[k] > 0) or None
    p50 = [(r["latency_ms"]["p50"], r.get("frames") or 0) for r in reports
           if (r.get("latency_ms") or {}).get("p50") is not None]
    p99 = [r["latency_ms"]["p99"] for r in reports
           if (r.get("latency_ms") or {}).get("p99") is not None]
    weight = sum(w for _, w in p50)
    return {"fps": fps, "model_fps": model_fps,
            "fps_ratio": fps / model_fps if fps and model_fps else None,
            "latency_ms": {"p50": sum(v * w for v, w in p50) / weight if weight else None,
                           "p99": max(p99) if p99 else None},
            "latency_merge": "p50: frame-weighted mean of per-bag p50; p99: max of per-bag p99",
            "wall_s": max(wall.values()) if wall else 0.0, "infer_s": sum(infer.values())}


def merge_reports(root: Path, entries: Sequence[dict[str, Any]],
                  world_size: int) -> dict[str, Any]:
    reports = _bag_reports(root, entries)
    first = reports[0] if reports else {}
    skipped: Counter[str] = Counter()
    for r in reports:
        skipped.update((r.get("skipped") or {}).get("reasons") or {})
    merged: dict[str, Any] = {
        "input": str(Path(entries[0]["bag"]).parent) if entries else None,
        "world_size": world_size, "bags": list(entries),
        "failed": [e for e in entries if e["status"] != "ok"],
        "model": first.get("model"), "checkpoint": first.get("checkpoint"),
        "device": ", ".join(sorted({str(r.get("device")) for r in reports})) or None,
        "frames": sum(r.get("frames") or 0 for r in reports),
        "frames_in_topic": sum(r.get("frames_in_topic") or 0 for r in reports),
        "interrupted": any(e["status"] == "interrupted" for e in entries),
        "error": "; ".join(e["error"] for e in entries if e.get("error")) or None,
        "skipped": {"count": sum(skipped.values()), "reasons": dict(skipped)},
        "damaged": [{"bag": r.get("input"), "cause": r["damage"]["cause"],
                     "frames": r.get("frames"), "frames_lost": r.get("frames_lost"),
                     "topic": r.get("topic")} for r in reports if r.get("damage")],
        "class_names": first.get("class_names"), "ignore_index": first.get("ignore_index"),
        "palette": first.get("palette"),
        **_merged_timing(reports),
    }
    cm = merge_confusion(reports)
    if cm is not None:
        merged["ground_truth"] = _merged_ground_truth(reports)
        merged.update(accuracy_fields(cm, first.get("class_names") or []))
    return clean_json(merged)


def _merged_ground_truth(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    gts = [r["ground_truth"] for r in reports if r.get("ground_truth")]
    unusable: Counter[str] = Counter()
    for gt in gts:
        unusable.update(gt.get("frames_gt_unusable") or {})
    return {"frames_with_gt": sum(gt["frames_with_gt"] for gt in gts),
            "frames_without_gt": sum(gt["frames_without_gt"] for gt in gts),
            "frames_gt_unusable": dict(unusable), "source": "per-bag ground truth"}

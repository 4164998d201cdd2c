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

"""What ``gpu_check.py run`` leaves under ``--out``: few files, as the device tool returns them.

The tool brings back at most 8 files of at most 16 MiB each (64 MiB together), named in
letters, digits, '.', '_' and '-': ``summary.txt`` (one screen), ``summary.json`` (every
figure), ``logs.tar.gz`` (logs, benchmark JSON, log.csv, evaluations) and the exported
checkpoints, a larger one split into ``.partN`` files (``cat NAME.part* > NAME``).
"""
from __future__ import annotations

import json
import re
import sys
import tarfile
import traceback
from pathlib import Path
from typing import Any

from gpu_check_run import Context, StoppedFromOutside

PART_BYTES = 15 * 2 ** 20
OUT_LIMITS = {"files": 8, "file_bytes": 16 * 2 ** 20, "total_bytes": 64 * 2 ** 20}
NAME_OK = re.compile(r"^[A-Za-z0-9._-]+$")
HOLD = "0006R0"  # the model card's held-out drive
TARGETS = {"model_fps": 1000.0, "pipeline_stream_fps": 500.0}  # CANet1 fp16 1024x512, H100


def out_problems(out: Path) -> list[str]:
    """Ways in which ``out`` breaks the device tool's limits on what comes back."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = []
    if len(files) > OUT_LIMITS["files"]:
        problems.append(f"{len(files)} files, more than {OUT_LIMITS['files']}")
    total = 0
    for path in files:
        size = path.stat().st_size
        total += size
        rel = path.relative_to(out)
        if size > OUT_LIMITS["file_bytes"]:
            problems.append(f"{rel}: {size} bytes, over 16 MiB")
        if len(rel.parts) > 3 or not all(NAME_OK.match(part) for part in rel.parts):
            problems.append(f"{rel}: too deep or a name with other characters")
    if total > OUT_LIMITS["total_bytes"]:
        problems.append(f"{total} bytes in all, over 64 MiB")
    return problems


def target_checks(bench: dict[str, Any]) -> dict[str, Any]:
    """Return the issue's H100 targets against the fp16, CUDA-graph, 1024x512 run, or None."""
    run = next((r for r in bench.get("runs", []) if r.get("name") == "fp16_graph"), None)
    report = (run or {}).get("report") or {}
    checks = {}
    for key, target in TARGETS.items():
        measured = report.get(key) if _is_number(report.get(key)) else None
        checks[key] = {"target": target, "measured": measured,
                       "met": None if measured is None else measured >= target}
    return checks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(value: Any, spec: str) -> str:
    """``value`` in ``spec``, or 'n/a' as wide: a partial benchmark leaves figures None."""
    if _is_number(value):
        return format(value, spec)
    return "n/a".rjust(int(re.match(r"\d*", spec).group() or 0))


def _bench_line(run: dict[str, Any]) -> str:
    r = run.get("report")
    if not r:
        why = run.get("skipped") or ("stopped at its box before measuring" if
                                     run.get("timed_out") else
                                     f"failed (rc {run.get('rc')}, see logs)")
        return f"  {run.get('name', '?'):<22} {why}"
    graph = "graph" if run.get("graph_captured") else "no graph"
    if run.get("timed_out"):
        graph += ", PARTIAL (stopped at its box)"
    elif r.get("interrupted"):
        graph += ", PARTIAL (interrupted)"
    return (f"  {run.get('name', '?'):<22} model {_num(r.get('model_ms'), '7.3f')} ms "
            f"{_num(r.get('model_fps'), '7.0f')} FPS | labels "
            f"{_num(r.get('pipeline_labels_ms'), '6.2f')} ms | all four "
            f"{_num(r.get('pipeline_all_ms'), '6.2f')} ms | stream "
            f"{_num(r.get('pipeline_stream_fps'), '6.0f')} FPS | {graph}")


def _train_lines(train: dict[str, Any]) -> list[str]:
    lines = []
    for tag, m in (train.get("models") or {}).items():
        if "skipped" in m:
            lines.append(f"  {tag} ({m['backbone']}): not run: {m['skipped']}")
            continue
        ev = m.get("eval") or {}
        score = {k: (f"{100 * v['miou']:.1f}" if v and v.get("miou") is not None else "n/a")
                 for k, v in ev.items() if isinstance(v, dict) or v is None}
        lines.append(f"  {tag} ({m['backbone']}): {m.get('epochs_done')} epochs in "
                     f"{m.get('train_wall_s')} s ({m.get('epoch_s')} s/epoch, batch "
                     f"{m.get('batch')}); {m.get('checkpoint_scored', '?')}: held-out "
                     f"{HOLD} mIoU {score.get('heldout', 'n/a')}, corrected 0.75 "
                     f"{score.get('heldout_corrected_0.75', 'n/a')}; val (in training) "
                     f"{score.get('val_seen_in_training', 'n/a')}")
    return lines


def _head_lines(ctx: Context) -> list[str]:
    res = ctx.results
    card = res.get("card")
    head = [f"canet_ros GPU check, {res['started_utc']}{' (DRY RUN, CPU)' if ctx.dry else ''}"
            f", {res.get('wall_s', '...')} s of {ctx.budget_s:.0f}"]
    if not card:
        return head + ["card: not probed (setup not asked)"]
    head.append(f"card: {card.get('name') or '?'} ({card.get('memory') or 'no GPU'}, "
                f"driver {card.get('driver') or '-'}); torch {card.get('torch')} sees "
                f"{card.get('torch_device') or '?'}; Python {card.get('python')}")
    system = res.get("system") or {}
    if system:  # canet info --system, as the package saw the machine
        torch_ = system.get("torch") or {}
        head.append(f"package view: CUDA {torch_.get('cuda_build')} available "
                    f"{torch_.get('cuda_available')}, devices {torch_.get('cuda_devices')}; "
                    f"CPU loops: {(system.get('numba') or {}).get('status')}")
    return head


def _tests_line(tests: dict[str, Any]) -> str:
    counts = tests.get("counts")
    if counts:
        return (f"tests: {counts['passed']} passed, {counts['failures']} failed, "
                f"{counts['errors']} errors, {counts['skipped']} skipped of {counts['tests']} "
                f"({tests.get('wall_s')} s; {len(tests['selected'])} CUDA-gated ids)")
    if tests.get("status"):
        return f"tests: {tests['status']}"
    return (f"tests: no result ({tests.get('error') or 'rc ' + str(tests.get('rc'))}"
            f"{', timed out' if tests.get('timed_out') else ''}; see logs/tests.log)")


def _bench_lines(bench: dict[str, Any], checks: dict[str, Any]) -> list[str]:
    if not bench.get("runs"):
        return [f"bench: {bench.get('status') or bench.get('error') or 'no runs'}"]
    lines = ["bench (bundled CANet1, network 1024x512 unless dry; canet benchmark):"]
    lines += [_bench_line(r) for r in bench["runs"]]
    for key, c in checks.items():
        verdict = {True: "met", False: "NOT met", None: "not measured"}[c["met"]]
        lines.append(f"  target {key} >= {c['target']:.0f}: {verdict}"
                     + (f" ({c['measured']:.0f})" if c["measured"] is not None else ""))
    return lines


def summary_text(ctx: Context, checks: dict[str, Any]) -> str:
    steps = ctx.results["steps"]
    lines = _head_lines(ctx)
    setup = steps.get("setup", {})
    lines.append(f"setup: wheels rc {setup['wheels'].get('rc')}, package rc "
                 f"{setup.get('package', {}).get('rc')}" if "wheels" in setup else
                 f"setup: {setup.get('status') or setup.get('error') or 'running'}")
    if "tests" in steps:
        lines.append(_tests_line(steps["tests"]))
    if "bench" in steps:
        lines += _bench_lines(steps["bench"], checks)
    train = steps.get("train")
    if train:
        lines.append("train: " + (train.get("recipe") or train.get("skipped")
                                  or train.get("error") or train.get("status", "")))
        lines += _train_lines(train)
        if train.get("models"):
            lines.append("  model card (CPU, PNG frames): stage-1 recipe 39.2 held-out mIoU, "
                         "shipped recipe 41.2 (corrected)")
    lines += [f"ERROR in {name}: {step['error']}" for name, step in steps.items()
              if step.get("error")]
    lines += [f"REPORT ERROR after {e['after']}: {e['error']}"
              for e in ctx.results.get("report_errors", [])]
    lines.append("step verdicts: " + ", ".join(
        f"{k} {'ok' if v.get('ok') else v.get('status', 'FAILED')}" for k, v in steps.items()))
    return "\n".join(lines) + "\n"


def _pack_logs(ctx: Context) -> None:
    wanted = sorted(ctx.work.glob("logs/*.log"))
    wanted += sorted(ctx.work.glob("*.json")) + sorted(ctx.work.glob("*.xml"))
    wanted += sorted(ctx.work.glob("*.txt"))
    for run in sorted(ctx.work.glob("train_*")):
        wanted += [p for p in (run / "log.csv", run / "config.yaml") if p.is_file()]
        wanted += sorted((run / "tb").glob("*")) if (run / "tb").is_dir() else []
    tmp = ctx.out / "logs.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for path in wanted:
            tar.add(path, arcname=str(path.relative_to(ctx.work)))
    tmp.replace(ctx.out / "logs.tar.gz")


def _copy_checkpoints(ctx: Context) -> list[str]:
    names = []
    models = (ctx.results["steps"].get("train") or {}).get("models") or {}
    for m in models.values():
        src = Path(m["export"]) if m.get("export") else None
        if src is None or not src.is_file():
            continue
        data = src.read_bytes()
        chunks = [data] if len(data) <= PART_BYTES else [
            data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
        for k, chunk in enumerate(chunks):
            name = src.name if len(chunks) == 1 else f"{src.name}.part{k}"
            (ctx.out / name).write_bytes(chunk)
            names.append(name)
    return names


def write_report(ctx: Context) -> str:
    """(Re)write everything under ``ctx.out``; returns the one-screen summary."""
    checks = target_checks(ctx.results["steps"].get("bench") or {})
    ctx.results["targets"] = checks
    ctx.results["checkpoints_out"] = _copy_checkpoints(ctx)
    _pack_logs(ctx)
    text = summary_text(ctx, checks)
    (ctx.out / "summary.txt").write_text(text)
    (ctx.out / "summary.json").write_text(json.dumps(ctx.results, indent=1, default=str))
    problems = out_problems(ctx.out)
    if problems:
        ctx.results["out_problems"] = problems
        text += "OUT limits: " + "; ".join(problems) + "\n"
        (ctx.out / "summary.txt").write_text(text)
        (ctx.out / "summary.json").write_text(json.dumps(ctx.results, indent=1, default=str))
    return text


def write_report_safely(ctx: Context, after: str) -> str:
    """``write_report``, but its failure is recorded in the summary, not raised.

    It runs after every step, outside the steps' own guard: a report bug (a figure a
    partial benchmark left None) must not end the run before the next step and the summary.
    """
    try:
        return write_report(ctx)
    except StoppedFromOutside:
        raise
    except Exception as exc:
        ctx.results.setdefault("report_errors", []).append(
            {"after": after, "error": f"{type(exc).__name__}: {exc}",
             "traceback": traceback.format_exc()})
        print(f"gpu_check: writing the report failed after {after}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return _fallback_report(ctx)


def _plain_summary(ctx: Context) -> str:
    """Return the least that can be said: each step's verdict and the errors, unformatted."""
    lines = [f"canet_ros GPU check, {ctx.results.get('started_utc')} (plain summary: the "
             "report code failed; every figure is in summary.json)"]
    for name, step in (ctx.results.get("steps") or {}).items():
        verdict = "ok" if step.get("ok") else step.get("status", "FAILED")
        lines.append(f"{name}: {verdict}" + (f"; ERROR {step['error']}" if step.get("error")
                                             else ""))
    lines += [f"REPORT ERROR after {e['after']}: {e['error']}"
              for e in ctx.results.get("report_errors", [])]
    return "\n".join(lines) + "\n"


def _fallback_report(ctx: Context) -> str:
    """Write summary.txt and summary.json each on its own, as plainly as needed."""
    try:
        text = summary_text(ctx, ctx.results.get("targets") or {})
    except Exception:
        text = _plain_summary(ctx)
    files = {"summary.txt": lambda: text, "summary.json": lambda: json.dumps(
        ctx.results, indent=1, default=str, skipkeys=True)}
    for name, content in files.items():
        try:
            (ctx.out / name).write_text(content())
        except Exception as exc:  # nothing plainer is left to try
            print(f"gpu_check: cannot write {name}: {exc}", file=sys.stderr, flush=True)
    return text

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

"""``gpu_check.py run``: the steps, each in child processes with a time box.

Steps: ``setup`` (wheels, package, what the card is), ``tests`` (every test that skips
without CUDA), ``bench`` (``canet benchmark`` configurations), ``train`` (gpu_check_train).
A step that fails or overruns is recorded and the next one starts; the summary and logs
under ``--out`` are rewritten after every step (a killed call still brings back the rest).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gpu_check_prepare import dry_subset
from gpu_check_tests import find_cuda_tests

STEPS = ("setup", "tests", "bench", "train")
SUMMARY_S = 15.0  # kept back for the summary and packing the logs
# Minimum each later step needs, so an overrunning step cannot starve the training.
NEED_S = {"real": {"tests": 60.0, "bench": 60.0, "train": 200.0},
          "dry": {"tests": 30.0, "bench": 30.0, "train": 240.0}}


class StoppedFromOutside(Exception):
    """SIGTERM (or SIGINT) reached ``gpu_check.py run`` itself."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise StoppedFromOutside(signal.Signals(signum).name)


@dataclass
class Context:
    """Where things are, how much time is left, and what each step found."""

    repo: Path
    out: Path
    work: Path
    payload: Path
    data: Path | None
    dry: bool
    budget_s: float
    train_s: float
    bench_limit: int | None
    models: tuple[str, ...] = ("canet1", "canet2")
    steps: frozenset[str] = frozenset(STEPS)  # the steps asked for (--steps)
    t0: float = field(default_factory=time.monotonic)
    env: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def box(self, cap: float, after: tuple[str, ...] = ()) -> float:
        """Seconds a step may take: its cap, less what the later steps asked for need."""
        needs = NEED_S["dry" if self.dry else "real"]
        spare = self.left() - SUMMARY_S - sum(needs[s] for s in after if s in self.steps)
        return max(5.0, min(cap, spare))

    def python(self) -> list[str]:
        return [sys.executable]


def run_proc(ctx: Context, cmd: list[str], log: Path, timeout: float,
             stdout: Path | None = None, interrupt: bool = False) -> dict[str, Any]:
    """Run ``cmd`` from the repository root; stop it at ``timeout`` seconds.

    ``interrupt``: the first stop is a SIGINT to the process itself (the trainer then
    saves a resumable last.pt, the benchmark prints its partial figures); anything still
    alive 15 s later is killed with its group.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "ab") as err, open(stdout or log, "ab") as out:
        err.write(f"$ {' '.join(cmd)}\n".encode())
        err.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=ctx.repo, env=ctx.env, stdout=out,
                                    stderr=err, start_new_session=True)
        except OSError as exc:  # e.g. no nvidia-smi: a result, not a crash
            err.write(f"[gpu_check] cannot start: {exc}\n".encode())
            return {"rc": None, "wall_s": 0.0, "timed_out": False, "error": str(exc)}
        timed_out = False
        try:
            proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(proc, interrupt)
        except BaseException:  # stopped from outside: its own session would outlive us
            _stop(proc, interrupt=False)
            raise
    wall = time.monotonic() - start
    with open(log, "ab") as err:
        err.write(f"[gpu_check] exit {proc.returncode} after {wall:.1f} s"
                  f"{' (stopped at its time box)' if timed_out else ''}\n".encode())
    return {"rc": proc.returncode, "wall_s": round(wall, 1), "timed_out": timed_out}


def _stop(proc: subprocess.Popen, interrupt: bool) -> None:
    first, grace = (signal.SIGINT, 15.0) if interrupt else (signal.SIGTERM, 5.0)
    try:
        if interrupt:
            proc.send_signal(first)
        else:
            os.killpg(proc.pid, first)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:  # the group: DataLoader workers, pytest's children
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# -- setup -----------------------------------------------------------------------------------
def _install_wheels(ctx: Context, wheels: list[Path], log: Path) -> dict[str, Any]:
    site = ctx.work / "site"
    cmd = [*ctx.python(), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
           "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site)]
    if ctx.dry:  # this interpreter is not 3.12: install them as for the GPU image, unused
        from gpu_check_prepare import PLATFORMS

        cmd += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
        cmd += [arg for plat in PLATFORMS for arg in ("--platform", plat)]
    res = {**run_proc(ctx, cmd + [str(w) for w in wheels], log, ctx.box(120)),
           "files": [w.name for w in wheels]}
    if res["rc"] == 0 and not ctx.dry:
        ctx.env["PYTHONPATH"] = os.pathsep.join([str(site), ctx.env["PYTHONPATH"]])
    return res


def _card(ctx: Context, log: Path) -> dict[str, Any]:
    """Describe the machine without importing torch here (the benchmark adds torch's view)."""
    import platform
    from importlib import metadata

    card: dict[str, Any] = {"python": platform.python_version(),
                            "torch": metadata.version("torch")}
    if ctx.dry:
        return {**card, "name": "CPU (dry run)"}
    query = ctx.work / "nvidia_smi_query.txt"
    run_proc(ctx, ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                   "--format=csv,noheader"], log, 30, stdout=query)
    smi = ctx.work / "nvidia_smi.txt"
    run_proc(ctx, ["nvidia-smi"], log, 30, stdout=smi)
    lines = [ln for ln in query.read_text().splitlines() if ln.strip() and not
             ln.startswith(("$", "[gpu_check]"))] if query.is_file() else []
    if lines:
        card["name"], card["memory"], card["driver"] = [v.strip() for v in
                                                        (lines[0].split(",") + ["", ""])[:3]]
    return card


def step_setup(ctx: Context) -> dict[str, Any]:
    res: dict[str, Any] = {}
    log = ctx.work / "logs" / "setup.log"
    wheels = sorted((ctx.payload / "wheels").glob("*.whl"))
    res["wheels"] = (_install_wheels(ctx, wheels, log) if wheels else
                     {"rc": None, "note": f"no wheels in {ctx.payload / 'wheels'}"})
    # Here the package is already installed editable in .venv: build it into a scratch
    # folder instead, which checks the same thing (it installs offline from the tree).
    target = ["--target", str(ctx.work / "pkg")] if ctx.dry else ["-e"]
    cmd = [*ctx.python(), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
           "--no-build-isolation", *target, "."]
    res["package"] = run_proc(ctx, cmd, log, ctx.box(120))
    ctx.results["card"] = _card(ctx, log)
    # canet info --system: torch's CUDA, the libraries' versions, as the package sees them.
    system = ctx.work / "logs" / "system.json"
    res["system"] = run_proc(ctx, [*ctx.python(), "-m", "canet_ros.cli", "info", "--system",
                                   "--json"], log, ctx.box(60), stdout=system)
    ctx.results["system"] = _read_json(system)
    res["ok"] = all(v.get("rc") in (0, None) for v in res.values() if isinstance(v, dict))
    return res


def _read_json(path: Path) -> Any:
    """Return the last JSON line a command printed, or None."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


# -- tests -----------------------------------------------------------------------------------
def _junit_counts(path: Path) -> dict[str, int] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    keys = ("tests", "failures", "errors", "skipped")
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in keys}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def step_tests(ctx: Context) -> dict[str, Any]:
    ids = find_cuda_tests(ctx.repo / "test")
    if not ids:  # pytest without ids would run the whole suite
        return {"ok": False, "selected": [], "error": "no CUDA-gated tests found under test/"}
    junit = ctx.work / "tests_junit.xml"
    cmd = [*ctx.python(), "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
           f"--junitxml={junit}"]
    if importlib.util.find_spec("pytest_timeout") is not None:
        cmd.append("--timeout=90")  # on the GPU image: one hung test fails alone
    res = run_proc(ctx, cmd + ids, ctx.work / "logs" / "tests.log",
                   ctx.box(150, ("bench", "train")))
    res["selected"] = ids
    res["counts"] = _junit_counts(junit)
    counts = res["counts"] or {}
    res["ok"] = (res["rc"] == 0 and not res["timed_out"] and bool(counts)
                 and counts["failures"] + counts["errors"] == 0)
    return res


# -- bench -----------------------------------------------------------------------------------
def bench_configs(dry: bool) -> list[dict[str, Any]]:
    """(precision, CUDA graph, frame size) in order of importance: the targets first."""
    if dry:
        return [{"precision": "fp32", "graph": True, "frame": None},
                {"precision": "fp32", "graph": False, "frame": (128, 64)}]
    return [{"precision": "fp16", "graph": True, "frame": None},
            {"precision": "fp16", "graph": True, "frame": (1920, 1200)},
            {"precision": "fp16", "graph": False, "frame": None},
            {"precision": "fp32", "graph": True, "frame": None},
            {"precision": "fp32", "graph": False, "frame": None},
            {"precision": "fp32", "graph": True, "frame": (1920, 1200)}]


def _bench_argv(ctx: Context, cfg: dict[str, Any]) -> list[str]:
    width, height, iters, warmup = (64, 32, 3, 1) if ctx.dry else (1024, 512, 200, 20)
    argv = ["--checkpoint", "default", "--device", ctx.device, "--width", str(width),
            "--height", str(height), "--precision", cfg["precision"], "--iters", str(iters),
            "--warmup", str(warmup), "--json", "--no-progress"]
    if ctx.dry:  # the torch runtime is the CUDA path's; a small reference matmul
        argv += ["--runtime", "torch", "--matmul-size", "128"]
    if cfg["frame"]:
        argv += ["--frame-size", f"{cfg['frame'][0]}x{cfg['frame'][1]}"]
    return argv + ([] if cfg["graph"] else ["--no-cuda-graph"])


def bench_name(cfg: dict[str, Any]) -> str:
    frame = f"_{cfg['frame'][0]}x{cfg['frame'][1]}" if cfg["frame"] else ""
    return f"{cfg['precision']}_{'graph' if cfg['graph'] else 'eager'}{frame}"


def step_bench(ctx: Context) -> dict[str, Any]:
    runs = []
    for cfg in bench_configs(ctx.dry)[:ctx.bench_limit]:
        name = bench_name(cfg)
        if ctx.box(1e9, ("train",)) < (15 if ctx.dry else 40):
            runs.append({"name": name, "skipped": "no time left before training"})
            continue
        out, log = ctx.work / f"bench_{name}.json", ctx.work / "logs" / f"bench_{name}.log"
        cmd = [*ctx.python(), str(ctx.repo / "tools" / "gpu_check.py"), "_bench",
               *_bench_argv(ctx, cfg)]
        # A SIGINT at the box makes canet benchmark print what it measured so far (exit 130).
        res = run_proc(ctx, cmd, log, ctx.box(150 if ctx.dry else 75, ("train",)), stdout=out,
                       interrupt=True)
        text = log.read_text(errors="replace")
        res.update(name=name, config=cfg, report=_read_json(out),
                   graph_captured="captured as a CUDA graph" in text,
                   graph_capture_failed="CUDA graph capture failed" in text)
        if not cfg["graph"] and res["graph_captured"]:
            res["note"] = "graphs were asked off but one was captured: the toggle failed"
        runs.append(res)
        if (res["report"] or {}).get("device"):
            ctx.results.setdefault("card", {}).setdefault("torch_device", res["report"]["device"])
    ok = all(r.get("rc") == 0 and r.get("report") for r in runs if "skipped" not in r)
    return {"runs": runs, "ok": ok and any("skipped" not in r for r in runs)}


# -- driver ----------------------------------------------------------------------------------
def _context(args: argparse.Namespace, repo: Path) -> Context:
    dry = bool(args.dry_run)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") and not dry
                       else repo / ".gpu_check" / "out")
    work = args.work or (repo / ".gpu_check" / "scratch" if dry else Path("/tmp/gpu_check_work"))
    payload = (repo / args.payload).resolve()
    data = args.data or payload / "camvid"
    ctx = Context(repo=repo, out=out.resolve(), work=work.resolve(), payload=payload,
                  data=data.resolve() if data.is_dir() else None, dry=dry,
                  budget_s=args.budget_s or (900.0 if dry else 450.0),
                  train_s=args.train_s or (40.0 if dry else 170.0),
                  bench_limit=args.bench_limit,
                  models=tuple(m.strip() for m in args.models.split(",") if m.strip()))
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg",
               CANET_ROS_CACHE=str(ctx.work / "cache"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH")) if p)
    if ctx.data is not None:
        env["CANET_CAMVID_ROOT"] = str(ctx.data)
    if dry:  # share the two busy cores politely
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ctx.env = env
    return ctx


def _clean_folders(ctx: Context) -> str | None:
    """Empty our own files from out/ and work/; an error line if work/ is someone else's."""
    for folder in (ctx.out, ctx.work):
        folder.mkdir(parents=True, exist_ok=True)
    for old in ctx.out.iterdir():  # an earlier run's results here would mislead
        if old.is_file() and old.name.startswith(("summary.", "logs.tar.gz", "canet")):
            old.unlink()
    marker = ctx.work / ".gpu_check_work"
    if any(ctx.work.iterdir()) and not marker.is_file():
        return (f"{ctx.work}: not empty and not a gpu_check work folder; pass an empty or "
                "new --work")
    for old in ctx.work.iterdir():  # ... and a run folder's old log.csv would skew the plan
        if old.name not in ("cache", marker.name):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    marker.touch()
    return None


def run_all(args: argparse.Namespace, repo: Path) -> int:
    """Every asked step in order; 0 when they and the report were fine, 130 if stopped."""
    from gpu_check_report import write_report_safely
    from gpu_check_train import step_train

    ctx = _context(args, repo)
    problem = _clean_folders(ctx)
    if problem:
        print(f"gpu_check run: error: {problem}", file=sys.stderr)
        return 1
    if ctx.dry and ctx.data is not None:
        ctx.data = dry_subset(ctx.data, ctx.work / "dry_camvid")
        ctx.env["CANET_CAMVID_ROOT"] = str(ctx.data)
    wanted = {s.strip() for s in args.steps.split(",") if s.strip()}
    unknown = wanted - set(STEPS)
    if unknown:
        print(f"gpu_check run: error: unknown steps {sorted(unknown)}; choose from {STEPS}",
              file=sys.stderr)
        return 2
    funcs: dict[str, Callable[[Context], dict[str, Any]]] = {
        "setup": step_setup, "tests": step_tests, "bench": step_bench, "train": step_train}
    ctx.steps = frozenset(wanted)
    ctx.results.update(steps={}, dry_run=ctx.dry, started_utc=time.strftime(
        "%Y-%m-%d %H:%M:%S UTC", time.gmtime()), budget_s=ctx.budget_s)
    for sig in (signal.SIGTERM, signal.SIGINT):  # stop the children, keep what was done
        signal.signal(sig, _raise_stop)
    stopped = None
    for name in STEPS:
        if name not in wanted or stopped:
            ctx.results["steps"][name] = {"status": "not asked" if name not in wanted
                                          else f"not run: stopped by {stopped}"}
            continue
        print(f"gpu_check: {name} ({ctx.left():.0f} s left)", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            res = funcs[name](ctx)
        except StoppedFromOutside as exc:
            stopped = str(exc)
            res = {"ok": False, "error": f"stopped from outside by {stopped}"}
        except Exception as exc:  # a broken step must not take the others with it
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()}
        res["step_s"] = round(time.monotonic() - start, 1)
        ctx.results["steps"][name] = res
        try:  # a failing report is recorded in it and the next step still runs
            write_report_safely(ctx, after=name)
        except StoppedFromOutside as exc:
            stopped = stopped or str(exc)
    ctx.results["wall_s"] = round(time.monotonic() - ctx.t0, 1)
    print(write_report_safely(ctx, after="the last step"))
    ok = all(ctx.results["steps"][s].get("ok") for s in STEPS if s in wanted)
    return 130 if stopped else 0 if ok and not ctx.results.get("report_errors") else 1

#!/usr/bin/env python3
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

"""The first use of a lent GPU as one prepared call (issue 24; docs/gpu_check.md).

    .venv/bin/python tools/gpu_check.py prepare          # here: wheels + compact CamVid
    python3 tools/gpu_check.py run                       # there: tests, benchmark, training
    .venv/bin/python tools/gpu_check.py run --dry-run    # here: every step, tiny, on the CPU

Only the standard library is imported up front: the steps run in child processes, each
with its own time box, so one that hangs or fails leaves the others their time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DEFAULT_PAYLOAD = ".gpu_check/payload"
DEFAULT_CAMVID = Path(os.environ.get("CANET_CAMVID_ROOT")
                      or REPO.parent / "shared" / "data" / "camvid")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None
    if min(width, height) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return width, height


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="here: download the wheels, write the compact CamVid")
    p.add_argument("--payload", default=DEFAULT_PAYLOAD,
                   help="folder to fill, relative to the repository (carried as one path)")
    p.add_argument("--camvid", type=Path, default=DEFAULT_CAMVID,
                   help="SegNet-layout CamVid to copy (default $CANET_CAMVID_ROOT, else "
                   "../shared/data/camvid)")
    p.add_argument("--no-data", action="store_true", help="no CamVid copy")
    p.add_argument("--no-wheels", action="store_true", help="download no wheels")
    p.add_argument("--with-av", choices=("auto", "yes", "no"), default="auto",
                   help="carry PyAV (segment-bag --video): only if it fits (auto)")
    p.add_argument("--size", type=_size, default=(480, 360),
                   help="largest frame size kept (frames are only shrunk)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the frames")
    p.add_argument("--budget-mib", type=float, default=64.0,
                   help="what may travel in one call, working tree included")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_prepare)


def _add_run(sub: argparse._SubParsersAction) -> None:
    from gpu_check_run import STEPS

    p = sub.add_parser("run", help="there: every step, time-boxed, results under $OUT")
    p.add_argument("--dry-run", action="store_true",
                   help="on the CPU at tiny sizes and short times (checks the script)")
    p.add_argument("--out", type=Path, default=None,
                   help="results (default $OUT; with --dry-run .gpu_check/out)")
    p.add_argument("--payload", default=DEFAULT_PAYLOAD, help="the prepared folder")
    p.add_argument("--data", type=Path, default=None,
                   help="CamVid root to train on (default PAYLOAD/camvid)")
    p.add_argument("--work", type=Path, default=None,
                   help="scratch folder (default /tmp/gpu_check_work; dry run .gpu_check/scratch)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall time for everything (default 450; dry run 900, for starved "
                   "CPUs)")
    p.add_argument("--train-s", type=float, default=None,
                   help="CANet1's training box, start-up included (default 170; dry run 40)")
    p.add_argument("--steps", default=",".join(STEPS),
                   help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--models", default="canet1,canet2",
                   help="which to train: canet1 (always first), canet2 (if time is left)")
    p.add_argument("--bench-limit", type=int, default=None,
                   help="run only the first N benchmark configurations")
    p.set_defaults(func=_run)


def _prepare(args: argparse.Namespace) -> int:
    from gpu_check_prepare import PrepareError, describe, prepare

    payload = (REPO / args.payload).resolve()
    if REPO not in payload.parents:
        print(f"gpu_check prepare: error: {args.payload}: must be inside the repository",
              file=sys.stderr)
        return 1
    try:
        report = prepare(REPO, payload, None if args.no_data else args.camvid.resolve(),
                         args.size, args.quality, not args.no_wheels, args.with_av,
                         args.budget_mib, progress=not args.no_progress)
    except PrepareError as exc:
        print(f"gpu_check prepare: error: {exc}", file=sys.stderr)
        return 1
    print(describe(report))
    (payload / "prepare.json").write_text(json.dumps(report, indent=1))
    return 0


def _run(args: argparse.Namespace) -> int:
    from gpu_check_run import run_all

    return run_all(args, REPO)


def _bench(argv: list[str]) -> int:
    """``canet benchmark`` in this process, optionally with CUDA graphs off.

    The command has no switch for graphs, so the engine's default is changed here; the
    INFO log says whether a graph was captured, which the caller checks.
    """
    import logging

    graph = "--no-cuda-graph" not in argv
    argv = [a for a in argv if a != "--no-cuda-graph"]
    from canet_ros.cli import main
    from canet_ros.inference import SegmentationEngine

    SegmentationEngine.__init__.__kwdefaults__["cuda_graph"] = graph
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    return main(["benchmark", *argv])


def _cli(spec_path: str) -> int:
    """Several ``canet`` commands in one interpreter (one torch import), stdout to files."""
    import contextlib

    from canet_ros.cli import main

    spec = json.loads(Path(spec_path).read_text())
    status = 0
    for item in spec:
        with open(item["stdout"], "w") as out, contextlib.redirect_stdout(out):
            rc = main(item["argv"])
        print(f"gpu_check: canet {' '.join(item['argv'])} -> {rc}", file=sys.stderr, flush=True)
        status = status or rc
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_bench"]:  # internal: called by the run step, not by people
        return _bench(argv[1:])
    if argv[:1] == ["_cli"]:
        return _cli(argv[1])
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_prepare(sub)
    _add_run(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `... | head`: stop quietly with the project's status
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

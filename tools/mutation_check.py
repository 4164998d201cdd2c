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

"""Mutation check: each small deliberate bug must fail the tests that should notice it.

One bug at a time goes into a copy of the package.

    python tools/mutation_check.py                 # every mutation
    python tools/mutation_check.py --only iou_formula --only 'node_*'
    python tools/mutation_check.py --list          # names, files and test selections
    python tools/mutation_check.py --json out.json # also write the results as JSON

The repository (package, tests, configs; no .git, .venv or run folders) is copied to a
temporary folder once. For each mutation a regular expression is replaced in one file of
the copy, the mutation's pytest selection runs against the copy (first on PYTHONPATH,
run from the copy, no bytecode written), and the file is restored. Results:

  caught           a selected test failed; the first failing test is named
  survived         the selected tests ran and passed: the bug went unnoticed
  not exercised    every selected test was skipped (e.g. needs CUDA, ROS or CamVid)
  pattern missing  the code changed and the pattern no longer matches (update it)
  baseline fails   the selection already fails without the mutation (result unknown)
  timeout / error  pytest ran too long or could not run the selection

Standard library only. Exit status 0 when nothing survived, 1 otherwise.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", "*.egg-info",
                                 ".pytest_cache", ".ruff_cache", "runs", "build", "install",
                                 "log", "shared")


from mutations import MUTATIONS, Mutation  # noqa: E402  (this folder)


# -- running ------------------------------------------------------------------------------
def copy_repo(dest: Path) -> Path:
    root = dest / "repo"
    shutil.copytree(REPO, root, ignore=_IGNORE, symlinks=True)
    return root


def test_env(root: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a same-size edit in the same second is not stale
    # The copy is not next to the shared data folder; point the tests at the real one.
    for var, name in (("CANET_CAMVID_ROOT", "camvid"), ("CANET_CITYSCAPES_ROOT", "cityscapes")):
        default = REPO.parent / "shared" / "data" / name
        if var not in env and default.is_dir():
            env[var] = str(default)
    return env


def check_import(root: Path, python: str) -> None:
    out = subprocess.run([python, "-c", "import canet_ros; print(canet_ros.__file__)"],
                         cwd=root, env=test_env(root), capture_output=True, text=True)
    where = out.stdout.strip()
    if out.returncode != 0 or not Path(where).resolve().is_relative_to(root.resolve()):
        sys.exit(f"mutation_check: the tests would not import the copy ({where or out.stderr})")


_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|error|errors|xfailed|xpassed|deselected)")


def run_pytest(root: Path, args: Sequence[str], python: str, timeout: float
               ) -> Tuple[str, str, float]:
    """(status, detail, seconds): status caught/passed/skipped/none/error/timeout."""
    cmd = [python, "-m", "pytest", "-x", "-q", "-rfEs", "-p", "no:cacheprovider",
           "--no-header", *args]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=root, env=test_env(root), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"over {timeout:.0f} s", time.monotonic() - start
    seconds = time.monotonic() - start
    text = proc.stdout + proc.stderr
    counts: Dict[str, int] = {}
    for number, kind in _SUMMARY.findall(text.splitlines()[-1] if text.strip() else ""):
        counts[kind.rstrip("s") if kind.startswith("error") else kind] = int(number)
    if proc.returncode == 1:
        failed = re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", text, re.M)
        return "failed", failed[0] if failed else "(failure)", seconds
    if proc.returncode == 0:
        if counts.get("passed", 0) + counts.get("xfailed", 0) == 0:
            return "skipped", "all selected tests skipped", seconds
        return "passed", f"{counts.get('passed', 0)} passed", seconds
    if proc.returncode == 5:
        return "none", "no tests selected", seconds
    tail = " | ".join(text.strip().splitlines()[-3:])
    return "error", f"pytest exit {proc.returncode}: {tail[:300]}", seconds


def _prose_spans(text: str) -> List[Tuple[int, int, bool]]:
    """(start, end, whole) offsets of comments and strings; whole = comment or docstring.

    Patterns must hit code: a match starting in a comment or docstring, or inside (not
    at the start of) another string literal, is skipped.
    """
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans: List[Tuple[int, int, bool]] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):  # a file mid-edit: no protection
        return spans
    statement_start = (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
    for i, tok in enumerate(tokens):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        begin = starts[tok.start[0] - 1] + tok.start[1]
        end = starts[tok.end[0] - 1] + tok.end[1]
        before = tokens[i - 1].type if i else tokenize.NEWLINE
        after = tokens[i + 1].type if i + 1 < len(tokens) else tokenize.NEWLINE
        docstring = (tok.type == tokenize.STRING and before in statement_start
                     and after in (tokenize.NEWLINE, tokenize.ENDMARKER))
        spans.append((begin, end, tok.type == tokenize.COMMENT or docstring))
    return spans


def _in_code(pos: int, spans: Sequence[Tuple[int, int, bool]]) -> bool:
    return not any(begin <= pos < end and (whole or pos > begin) for begin, end, whole in spans)


def mutate_text(text: str, m: Mutation) -> Tuple[str, int]:
    """Replace up to ``m.count`` (0 = all) matches that start in code."""
    spans = _prose_spans(text)
    out, last, done = [], 0, 0
    for match in re.finditer(m.pattern, text, flags=re.M):
        if not _in_code(match.start(), spans):
            continue
        out += [text[last:match.start()], match.expand(m.replacement)]
        last, done = match.end(), done + 1
        if done == m.count:
            break
    return "".join(out) + text[last:], done


def apply(root: Path, m: Mutation) -> Optional[Tuple[Path, str]]:
    """Mutate the first matching file; returns (file, original text) or None."""
    for path in sorted(root.glob(m.files)):
        original = path.read_text()
        mutated, n = mutate_text(original, m)
        if n:
            path.write_text(mutated)
            return path, original
    return None


def check(root: Path, m: Mutation, python: str, timeout: float,
          baseline: Dict[Tuple[str, ...], Tuple[str, str, float]]) -> Dict[str, object]:
    result: Dict[str, object] = {"name": m.name, "files": m.files, "bug": m.bug,
                                 "tests": " ".join(m.tests), "note": m.note}
    if m.tests not in baseline:
        baseline[m.tests] = run_pytest(root, m.tests, python, timeout)
    base_status, base_detail, _ = baseline[m.tests]
    if base_status in ("failed", "error", "timeout", "none"):
        result.update(result="baseline fails", detail=f"{base_status}: {base_detail}")
        return result
    applied = apply(root, m)
    if applied is None:
        result.update(result="pattern missing", detail=m.pattern)
        return result
    path, original = applied
    result["file"] = str(path.relative_to(root))
    try:
        status, detail, seconds = run_pytest(root, m.tests, python, timeout)
    finally:
        path.write_text(original)
    verdict = {"failed": "caught", "passed": "survived", "skipped": "not exercised",
               "none": "error", "error": "error", "timeout": "timeout"}[status]
    result.update(result=verdict, detail=detail, seconds=round(seconds, 1))
    return result


def select(names: Sequence[str]) -> List[Mutation]:
    if not names:
        return list(MUTATIONS)
    wanted = [n for arg in names for n in arg.split(",") if n]
    chosen = [m for m in MUTATIONS if any(fnmatch.fnmatch(m.name, w) for w in wanted)]
    if not chosen:
        sys.exit(f"mutation_check: no mutation matches {', '.join(wanted)} (see --list)")
    return chosen


def table(results: Sequence[Dict[str, object]]) -> str:
    lines = ["| mutation | bug put in | result | test / detail |", "|---|---|---|---|"]
    for r in results:
        note = f" ({r['note']})" if r.get("note") and r["result"] != "caught" else ""
        lines.append(f"| {r['name']} | {r['bug']} | {r['result']} | {r['detail']}{note} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these mutations (repeatable, comma lists, globs)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pytest run")
    parser.add_argument("--python", default=sys.executable, help="interpreter with pytest")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--tests", default=None, metavar="ARGS",
                        help="run these pytest arguments for every mutation instead of its "
                             "own selection (e.g. 'test' for the whole suite)")
    args = parser.parse_args(argv)
    chosen = select(args.only)
    if args.tests:
        chosen = [dataclasses.replace(m, tests=tuple(args.tests.split())) for m in chosen]
    if args.list:
        for m in chosen:
            print(f"{m.name:30} {m.files:36} {' '.join(m.tests)}\n{'':30} {m.bug}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="canet_mutation_"))
    results: List[Dict[str, object]] = []
    try:
        root = copy_repo(tmp)
        check_import(root, args.python)
        baseline: Dict[Tuple[str, ...], Tuple[str, str, float]] = {}
        for i, m in enumerate(chosen, 1):
            print(f"[{i}/{len(chosen)}] {m.name}: {' '.join(m.tests)} ...", end=" ", flush=True)
            results.append(check(root, m, args.python, args.timeout, baseline))
            r = results[-1]
            print(f"{r['result']} ({r['detail']})", flush=True)
    finally:
        if args.keep:
            print(f"copy kept at {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(results))
    tally: Dict[str, int] = {}
    for r in results:
        tally[str(r["result"])] = tally.get(str(r["result"]), 0) + 1
    print("\n" + ", ".join(f"{n} {kind}" for kind, n in sorted(tally.items())))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["result"] != "survived" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

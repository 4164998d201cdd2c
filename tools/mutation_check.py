#!/usr/bin/env python3
"""Mutation check: put one small deliberate bug at a time into a copy of the package and
see whether the tests that should notice it fail.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", "*.egg-info",
                                 ".pytest_cache", ".ruff_cache", "runs", "build", "install",
                                 "log", "shared")


@dataclass(frozen=True)
class Mutation:
    name: str
    files: str  # glob relative to the repository; the first file where the pattern matches
    pattern: str  # regular expression (multiline mode)
    replacement: str  # re.sub replacement; \1 etc. refer to the pattern's groups
    tests: Tuple[str, ...]  # pytest arguments: files, node ids, "-k EXPR"
    bug: str  # what the mutation simulates
    count: int = 1  # matches replaced (0 = all)
    note: str = ""  # shown with the result, e.g. why a survivor is harmless here


def M(name: str, files: str, pattern: str, replacement: str, tests: str, bug: str,
      count: int = 1, note: str = "") -> Mutation:
    return Mutation(name, files, pattern, replacement, tuple(tests.split()), bug, count, note)


T_TRAIN = "test/test_training.py"
T_RESUME = "test/test_training_resume.py"
T_OPTIONS = "test/test_training_options.py"
MUTATIONS: List[Mutation] = [
    # -- checkpoints ---------------------------------------------------------------------
    M("checkpoint_weights_only", "canet_ros/checkpoint.py",
      r"(torch\.load\(\w[^)]*weights_only=)True", r"\1False",
      "test/test_checkpoint_security.py", "checkpoints unpickled with weights_only=False",
      count=0),
    M("backbone_weights_only", "canet_ros/models/backbones.py",
      r"(torch\.load\(\w[^)]*weights_only=)True", r"\1False",
      "test/test_checkpoint_security.py -k backbone",
      "backbone weight files unpickled with weights_only=False"),
    M("format_version_check", "canet_ros/checkpoint.py",
      r"^([ \t]*)if [^\n]*> FORMAT_VERSION:", r"\1if False:",
      "test/test_checkpoint.py", "the checkpoint format-version check removed"),
    M("export_not_half", "canet_ros/training/export.py",
      r"half: bool = True", "half: bool = False",
      "test/test_checkpoint.py -k export", "export_checkpoint ships fp32"),
    # -- training ------------------------------------------------------------------------
    M("resume_epochs_reaim", "canet_ros/training/trainer.py",
      r"^([ \t]*)self\.scheduler\.total_steps = [^\n]*$", r"\1pass",
      f"{T_RESUME} -k epochs",
      "a resume with a changed --epochs keeps the old schedule length"),
    M("late_crop_never", "canet_ros/training/trainer.py",
      r"if cfg\.late_crop_size and [^\n]*:", "if False:",
      f"{T_RESUME} -k late", "the late (full-size) crop phase never applied"),
    M("late_crop_off_by_one", "canet_ros/training/trainer.py",
      r"epoch >= (cfg\.epochs - cfg\.late_crop_epochs)", r"epoch > \1",
      f"{T_RESUME} -k late", "the late crop phase starts one epoch late"),
    M("bare_resume_ignores_config", "canet_ros/cli/train.py",
      r"^([ \t]*)if args\.resume:", r"\1if False:",
      f"{T_RESUME} -k bare", "bare `canet train --resume` ignores the run's saved config"),
    M("rng_restore", "canet_ros/training/trainer.py",
      r"^([ \t]*)set_rng_state\(self\.epoch_rng\)", r"\1pass",
      f"{T_TRAIN} -k resume_mid_epoch", "a resume does not restore the RNG state"),
    M("resume_no_replay", "canet_ros/training/trainer.py",
      r"for _ in range\(self\.step_in_epoch\):", "for _ in range(0):",
      f"{T_TRAIN} -k resume_mid_epoch", "a mid-epoch resume does not skip finished batches"),
    M("poly_schedule", "canet_ros/training/schedule.py",
      r"\) \*\* power", ") ** (power + 0.1)",
      f"{T_TRAIN} -k poly", "the poly exponent is off"),
    M("sgd_ignored", "canet_ros/training/trainer.py",
      r'if cfg\.optimizer == "sgd":', "if False:",
      f"{T_OPTIONS} -k sgd", "optimizer: sgd silently trains with Adam"),
    M("class_weighting_none_ignored", "canet_ros/training/data_setup.py",
      r'cfg\.class_weights is None and cfg\.class_weighting == "enet"',
      "cfg.class_weights is None",
      f"{T_OPTIONS} -k cross_entropy", "class_weighting: none still uses ENet weights"),
    M("class_weights_unused", "canet_ros/training/trainer.py",
      r"if self\.data\.class_weights else None", "if False else None",
      f"{T_OPTIONS} -k cross_entropy", "the loss ignores the computed class weights"),
    M("amp_on_cpu", "canet_ros/training/trainer.py",
      r'self\.use_amp = bool\(cfg\.amp\) and self\.device\.type == "cuda"',
      "self.use_amp = bool(cfg.amp)",
      f"{T_OPTIONS} -k amp", "AMP not switched off on the CPU",
      note="equivalent without CUDA: GradScaler and autocast('cuda') switch themselves off; "
           "with CUDA present test_amp_is_a_no_op_on_the_cpu sees the enabled scaler"),
    M("scaler_not_restored", "canet_ros/training/trainer.py",
      r'^([ \t]*)self\.scaler\.load_state_dict\(st\["scaler"\]\)', r"\1pass",
      f"{T_OPTIONS} -k amp_on_cuda", "a resume drops the GradScaler state",
      note="a disabled (CPU) scaler has no state; the CUDA test covers it"),
    # -- data and metrics ----------------------------------------------------------------
    M("iou_formula", "canet_ros/metrics.py",
      r"denom = tp \+ fp \+ fn", "denom = tp + fp",
      "test/test_metrics_classes.py", "IoU without the false negatives"),
    M("merge_drops_unmatched", "canet_ros/metrics.py",
      r"^([ \t]*)self\.unmatched \+= other\.unmatched", r"\1pass",
      "test/test_metrics_classes.py -k merge", "merging confusion matrices loses the misses"),
    M("void_not_ignored", "canet_ros/metrics.py",
      r"keep &= t != self\.ignore_index", "keep &= True",
      "test/test_metrics_classes.py", "void ground truth is scored"),
    M("label_upsampling", "canet_ros/data/transforms.py",
      r"(label = cv2\.resize\(label, [^\n]*)INTER_NEAREST", r"\1INTER_LINEAR",
      "test/test_data.py", "training labels resized bilinearly (invented class ids)"),
    M("flip_image_only", "canet_ros/data/transforms.py",
      r"image, label = image\[:, ::-1\], label\[:, ::-1\]",
      "image, label = image[:, ::-1], label",
      "test/test_data.py", "the flip moves the frame but not its label"),
    M("crop_label_elsewhere", "canet_ros/data/transforms.py",
      r"label\[y:y \+ ch, x:x \+ cw\]", "label[h - ch - y:h - y, x:x + cw]",
      "test/test_data.py", "frame and label cropped at different rows"),
    M("eval_label_resized", "canet_ros/data/transforms.py",
      r"^([ \t]*)(image = cv2\.resize\(image, self\.size, [^\n]*\))$",
      r"\1\2\n\1label = cv2.resize(label, self.size, interpolation=cv2.INTER_NEAREST)",
      "test/test_data.py -k eval_transform", "evaluation labels shrunk to the network size"),
    M("train_normalize_bgr", "canet_ros/data/transforms.py",
      r"torch\.from_numpy\(np\.ascontiguousarray\(image\)\)\.permute",
      "torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute",
      "test/test_data.py test/test_evaluate.py", "normalise() swaps the colour channels"),
    M("eval_align_corners", "canet_ros/evaluation.py",
      r'mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True',
      "test/test_evaluate.py", "evaluation upsamples logits with align_corners=True"),
    # -- inference engine ----------------------------------------------------------------
    M("engine_align_corners", "canet_ros/inference/*.py",
      r"\(np\.arange\((\w+), dtype=np\.float64\) \+ 0\.5\) \* \((\w+) / \w+\) - 0\.5",
      r"np.arange(\1, dtype=np.float64) * ((\2 - 1) / max(\1 - 1, 1))",
      "test/test_engine.py", "labels upsampled with align_corners=True sample positions"),
    M("device_resize_align_corners", "canet_ros/inference/*.py",
      r'mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True',
      "test/test_engine.py", "the device path resizes frames with align_corners=True"),
    M("model_align_corners", "canet_ros/models/blocks.py",
      r'mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True',
      "test/test_models.py test/test_evaluate.py test/test_pretrained.py",
      "the network's own upsampling uses align_corners=True"),
    M("engine_overlay_palette", "canet_ros/inference/engine.py",
      r"unpack_colour\(\s*packed, req\.order\)", 'unpack_colour(packed, "rgb")',
      "test/test_engine.py", "BGR overlays tinted with RGB colours"),
    M("confidence_scale", "canet_ros/inference/postprocess.py",
      r"np\.float32\(255\) / total", "np.float32(254) / total",
      "test/test_engine.py -k postprocess_functions", "confidence scaled to 254"),
    # -- image codec -----------------------------------------------------------------------
    M("padded_row_stride", "canet_ros/image_codec.py",
      r"strides: tuple\[int, \.\.\.\] = \(step, pixel_bytes\)",
      "strides: tuple[int, ...] = (width * pixel_bytes, pixel_bytes)",
      "test/test_image_codec.py", "rows read ignoring the padding in `step`"),
    M("endianness", "canet_ros/image_codec.py",
      r'">u2" if _field\(msg, "is_bigendian"\) else "<u2"', '"<u2"',
      "test/test_image_codec.py", "is_bigendian ignored"),
    M("size_check", "canet_ros/image_codec.py",
      r"if raw\.size < height \* step:", "if False:",
      "test/test_image_codec.py", "short data buffers not refused"),
    M("bgr_reorder", "canet_ros/image_codec.py",
      r"eight\[:, :, 2::-1\]", "eight[:, :, :3]",
      "test/test_image_codec.py", "BGR input not reordered to RGB"),
    M("yuv_byte_order", "canet_ros/image_codec.py",
      r'"yuv422": \(cv2\.COLOR_YUV2RGB_UYVY, cv2\.COLOR_YUV2BGR_UYVY\)',
      '"yuv422": (cv2.COLOR_YUV2RGB_YUY2, cv2.COLOR_YUV2BGR_YUY2)',
      "test/test_image_codec.py", "ROS yuv422 decoded as YUYV instead of UYVY"),
    M("compressed_rgb_marker", "canet_ros/image_codec.py",
      r'payload_order = "rgb" if [^\n]* else "bgr"', 'payload_order = "bgr"',
      "test/test_image_codec_compressed.py", "'compressed rgb8' payloads read as BGR"),
    M("encode_step", "canet_ros/image_codec.py",
      r"step = shape\[1\] \* \(3 if ndim == 3 else 1\) \* dtype\.itemsize",
      "step = shape[1] * (3 if ndim == 3 else 1)",
      "test/test_image_codec_compressed.py", "mono16 messages written with a byte step"),
    # -- bags ------------------------------------------------------------------------------
    M("header_nanoseconds", "canet_ros/bag/reader.py",
      r"(int\(header\.stamp\.sec\) \* 1_000_000_000) \+ int\(header\.stamp\.nanosec\)", r"\1",
      "test/test_bag_metrics.py", "stamps lose their nanoseconds (ground truth by stamp)"),
    M("header_copy_nanoseconds", "canet_ros/bag/reader.py",
      r"nanosec=int\(header\.stamp\.nanosec\)", "nanosec=0",
      "test/test_bag_formats.py", "output headers lose their nanoseconds"),
    M("bag_overlay_encoding", "canet_ros/bag/*.py",
      r'image_message\(overlay, f"\{order\}8", header\)', 'image_message(overlay, "rgb8", header)',
      "test/test_bag_formats.py", "BGR overlays labelled rgb8 in output bags"),
    M("gt_dir_index_pairing", "canet_ros/bag/groundtruth.py",
      r"self\._by_index\.get\((index|position)\)", r"self._by_index.get(\1 + 1)",
      "test/test_bag_metrics.py", "--gt-dir PNGs paired with the next frame"),
    M("gt_dir_stamp_pairing", "canet_ros/bag/groundtruth.py",
      r"int\(pair\[1\]\) \* 1_000_000_000 \+ int\(pair\[2\]\)",
      "int(pair[1]) * 1_000_000_000 + int(pair[2]) + 1",
      "test/test_bag_metrics.py", "<sec>_<nanosec>.png names matched to the wrong stamp"),
    # -- ROS node --------------------------------------------------------------------------
    M("node_channel_order", "canet_ros/ros/*.py",
      r"self\._engine\.infer\(frame, order,", 'self._engine.infer(frame, "rgb",',
      "test/test_node.py", "the node passes 'rgb' instead of the message's channel order"),
    M("node_overlay_encoding", "canet_ros/ros/*.py",
      r'"bgr8" if order == "bgr" else "rgb8"', '"rgb8"',
      "test/test_node.py", "the node labels BGR overlays rgb8"),
]


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

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

"""The training step of ``gpu_check.py run``: CANet1 (then CANet2) from scratch, time-boxed.

The model card's leave-one-drive-out protocol (train + val without drive 0006R0, best.pt
picked on 0006R0) with the shipped from-scratch config, at full 480x360 crops, batch 8
and AMP. A poly schedule must know its end, so the run is sized, not cut: two epochs are
timed first (``--max-steps-this-run``), then ``--resume`` with ``--epochs`` set to what
fits re-aims the decay at that end (docs/training.md, "Resume and Ctrl-C"). Past its time
box the trainer gets a SIGINT and leaves a resumable last.pt. Then ``canet evaluate`` on
the held-out drive (as trained and with the 0.75 prior correction) and on val, and
``canet export`` of an fp16 checkpoint to bring back.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from gpu_check_run import SUMMARY_S, Context, run_proc

CONFIG = "canet_ros/training/configs/camvid_mobilenetv2.yaml"
HOLDOUT = "0006R0"
BACKBONES = (("canet1", "mobilenetv2"), ("canet2", "resnet18"))
POST_S = {"real": 75.0, "dry": 60.0}  # evaluations + export, one interpreter
MIN_TRAIN_S = {"real": 90.0, "dry": 20.0}  # below this CANet2 is not started
IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def training_frames(repo: Path, data: Path) -> int:
    """Frames the recipe trains on: train+val less the held-out drive and config exclusions."""
    import yaml

    exclude = tuple(yaml.safe_load((repo / CONFIG).read_text()).get("train_exclude") or ())
    exclude += (HOLDOUT,)
    return sum(1 for split in ("train", "val") if (data / split).is_dir()
               for p in (data / split).iterdir()
               if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(exclude))


def _train_argv(ctx: Context, backbone: str, run: Path, batch: int) -> list[str]:
    w, h = ("64", "48") if ctx.dry else ("480", "360")
    workers, threads = ("0", "1") if ctx.dry else ("10", "4")
    return ["train", "--config", CONFIG, "--backbone", backbone, "--data-root", str(ctx.data),
            "--train-split", "train+val", "--holdout", HOLDOUT, "--val-sets",
            "--crop-size", w, h, "--late-crop-size", w, h, "--input-size", w, h,
            "--batch-size", str(batch), "--device", ctx.device, "--amp",
            "--workers", workers, "--threads", threads, "--out-dir", str(run)]


def read_log(run: Path) -> list[dict[str, str]]:
    try:
        with (run / "log.csv").open(newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _canet(ctx: Context) -> list[str]:
    return [*ctx.python(), "-m", "canet_ros.cli"]


def plan_epochs(cal: dict[str, Any], rows: list[dict[str, str]], seconds: float,
                epochs_done: int) -> tuple[int, float, float]:
    """(total epochs, seconds per epoch, start-up seconds) that fit ``seconds`` more.

    The last timed epoch is the steady one (the first pays for warm-up); start-up is what
    the timing run spent outside its epochs; a quarter of an epoch's time is added for
    validation and saving, and a tenth of the time is kept back.
    """
    times = [float(r["epoch_s"]) for r in rows if r.get("epoch_s")]
    if times:
        epoch_s = times[-1]
        startup = max(0.0, cal["wall_s"] - sum(times))
    else:  # not one epoch finished: assume the whole timing run was one epoch
        epoch_s, startup = cal["wall_s"], cal["wall_s"] * 0.5
    more = math.floor((seconds * 0.9 - startup) / (epoch_s * 1.25))
    return epochs_done + max(0, more), epoch_s, startup


def train_one(ctx: Context, tag: str, backbone: str, seconds: float) -> dict[str, Any]:
    """Time two epochs, then resume to the epoch count that fits; returns what happened."""
    end = time.monotonic() + seconds
    run = ctx.work / f"train_{tag}"
    frames = training_frames(ctx.repo, ctx.data)
    batch = 8 if frames >= 16 else 2  # a tiny synthetic copy still makes whole batches
    spe = frames // batch
    res: dict[str, Any] = {"backbone": backbone, "frames": frames, "batch": batch,
                           "steps_per_epoch": spe, "box_s": round(seconds, 1)}
    log = ctx.work / "logs" / f"train_{tag}.log"
    cal_argv = [*_train_argv(ctx, backbone, run, batch), "--epochs", "1000",
                "--max-steps-this-run", str(2 * spe), "--val-every", "1000"]
    # On the GPU the two epochs take seconds; a slow CPU's start-up can take most of a
    # dry run's box, and a SIGINT before training starts would leave no last.pt.
    res["timing_run"] = run_proc(ctx, _canet(ctx) + cal_argv, log,
                                 max(seconds, 150.0) if ctx.dry else seconds * 0.6,
                                 interrupt=True)
    done = len(read_log(run))
    left = end - time.monotonic()
    total, epoch_s, startup = plan_epochs(res["timing_run"], read_log(run), left, done)
    res.update(epoch_s=round(epoch_s, 2), startup_s=round(startup, 1), planned_epochs=total)
    if total > done and (run / "last.pt").is_file():
        every = max(1, math.ceil((total - done) / 5))  # five validations; the last epoch too
        argv = ["train", "--resume", str(run / "last.pt"), "--epochs", str(total),
                "--val-every", str(every)]
        res["main_run"] = run_proc(ctx, _canet(ctx) + argv, log, left, interrupt=True)
    rows = read_log(run)
    res["epochs_done"] = len(rows)
    res["train_wall_s"] = round(seconds - (end - time.monotonic()), 1)
    key = f"heldout_{HOLDOUT}_miou"
    res["heldout_curve"] = [(int(r["epoch"]), round(float(r[key]), 4)) for r in rows
                            if r.get(key)]
    # A run stopped by its time box (SIGINT) exits 130 with a resumable last.pt, or dies of
    # the SIGINT if it came while the run was ending: fine either way. The resume must have
    # trained on, though (a failed one still leaves the timing run's rows).
    resumed = res.get("main_run")
    res["ok"] = bool(rows) and (run / "last.pt").is_file() and (
        resumed is None or len(rows) > done)
    return res


def evaluate_and_export(ctx: Context, tag: str, res: dict[str, Any]) -> None:
    """Held-out drive (as trained, corrected 0.75), val, and an fp16 export; into ``res``."""
    run = ctx.work / f"train_{tag}"
    ck = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
    if not ck.is_file():
        res["eval"] = {"skipped": "no checkpoint"}
        return
    base = ["evaluate", "--checkpoint", str(ck), "--data-root", str(ctx.data), "--json",
            "--device", ctx.device]
    jobs = {"heldout": base + ["--holdout", HOLDOUT, "--prior-correction", "0"],
            "heldout_corrected_0.75": base + ["--holdout", HOLDOUT, "--prior-correction", "0.75"],
            "val_seen_in_training": base + ["--split", "val", "--prior-correction", "0"]}
    export = ctx.work / f"{tag}_{res['backbone']}_camvid_gpu_fp16.pt"
    # The export first: if the box ends during an evaluation, the weights still come back.
    spec = [{"argv": ["export", "--format", "checkpoint", "--checkpoint", str(ck),
                      "--precision", "fp16", "--out", str(export), "--json"],
             "stdout": str(ctx.work / f"export_{tag}.json")}]
    spec += [{"argv": argv, "stdout": str(ctx.work / f"eval_{tag}_{name}.json")}
             for name, argv in jobs.items()]
    spec_path = ctx.work / f"post_{tag}.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [*ctx.python(), str(ctx.repo / "tools" / "gpu_check.py"), "_cli", str(spec_path)]
    box = max(10.0, min(POST_S["real"] * 1.5, ctx.left() - SUMMARY_S) if not ctx.dry
              else ctx.left() - SUMMARY_S)
    res["post"] = run_proc(ctx, cmd, ctx.work / "logs" / f"train_{tag}.log", box)
    res["checkpoint_scored"] = ck.name
    res["eval"] = {}
    for name in jobs:
        path = ctx.work / f"eval_{tag}_{name}.json"
        got = json.loads(path.read_text()) if path.is_file() and path.stat().st_size else None
        res["eval"][name] = got and {k: got.get(k) for k in (
            "miou", "global_acc", "frames", "seen_in_training", "prior_correction", "resolution")}
    res["export"] = str(export) if export.is_file() else None
    res["ok"] = res["ok"] and res["post"]["rc"] == 0 and res["export"] is not None


def step_train(ctx: Context) -> dict[str, Any]:
    if ctx.data is None:
        return {"ok": False, "skipped": "no CamVid copy (run prepare, or pass --data)"}
    mode = "dry" if ctx.dry else "real"
    models: dict[str, Any] = {}
    for tag, backbone in BACKBONES:
        if tag not in ctx.models:
            models[tag] = {"backbone": backbone, "skipped": "not asked (--models)"}
            continue
        seconds = ctx.left() - SUMMARY_S - POST_S[mode]
        if tag == "canet1" or ctx.dry:  # CANet2 takes what is left, except in a dry run
            seconds = min(seconds, ctx.train_s)
        if seconds < MIN_TRAIN_S[mode]:
            models[tag] = {"backbone": backbone, "skipped": f"{seconds:.0f} s left for training"}
            continue
        print(f"gpu_check: training {tag} ({backbone}) for up to {seconds:.0f} s",
              file=sys.stderr, flush=True)
        models[tag] = train_one(ctx, tag, backbone, seconds)
        evaluate_and_export(ctx, tag, models[tag])
    # The first model asked for must train; a later one may be skipped for lack of time.
    first = next((tag for tag, _ in BACKBONES if tag in ctx.models), None)
    ok = first is not None and all(m.get("ok", False) for tag, m in models.items()
                                   if tag == first or (tag in ctx.models and "skipped" not in m))
    return {"ok": ok, "models": models, "recipe": _recipe(ctx)}


def _recipe(ctx: Context) -> str:
    size = "64x48" if ctx.dry else "480x360"
    return (f"{CONFIG} from scratch, train+val less {HOLDOUT} (held out, selects best.pt), "
            f"crops {size}, AMP on CUDA; epochs sized from two timed epochs")

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

"""The own-camera loop measured: a CamVid drive the model never saw as the new camera.

For each number of labelled frames N: the drive goes into a bag, `canet extract-frames`
picks N frames from it, the drive's ground truth stands in for the labeller, `canet train`
fine-tunes the starting checkpoint on them, and `canet evaluate` scores the drive's other
frames and CamVid val (the run's last.pt, and model.pt where the recipe ships one). Every
step is the CLI a user runs; CPU time is the children's.

    python tools/own_camera_study.py --start START.pt --out study/ [--counts 5 10 20 40]
        [--drive 0006R0] [--config CONFIG] [--train-arg=--lr=5e-4 ...]

The replayed CamVid frames leave the drive out (``--replay-exclude DRIVE`` is added unless
a --train-arg gives its own), and a score on frames any run behind the model trained on
(evaluate's ``seen_in_training``) stops the study.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO))

from make_sample_bag import default_root, stamp_of, write_bag  # noqa: E402

from canet_ros.classes import CAMVID  # noqa: E402

CANET = [sys.executable, "-m", "canet_ros.cli"]
TOPIC = "/camera/image_raw/compressed"


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def canet(*args: str, capture: bool = False) -> str:
    """Run one canet command; its JSON line when ``capture``."""
    cmd = [*CANET, *args]
    print("+ canet " + " ".join(args), flush=True)
    res = subprocess.run(cmd, check=True, text=True,
                         stdout=subprocess.PIPE if capture else None)
    return res.stdout.strip().splitlines()[-1] if capture else ""


def drive_pairs(root: Path, drive: str) -> List[tuple]:
    pairs = []
    for split in ("train", "val"):
        for image in sorted((root / split).glob(f"{drive}*.png")):
            pairs.append((image, root / f"{split}annot" / image.name))
    if not pairs:
        raise SystemExit(f"{root}: no frames of drive {drive}")
    return pairs


def make_dataset(extract: Path, pairs: List[tuple], out: Path) -> List[str]:
    """Return the extracted frames with the drive's ground truth as their masks."""
    first = int(re.findall(r"(\d+)$", pairs[0][0].stem)[0])  # as write_bag counts
    by_stamp = {}
    for image, label in pairs:
        sec, nsec = stamp_of(image, first)
        by_stamp[f"{sec}_{nsec:09d}"] = (image, label)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    names = []
    for frame in sorted((extract / "images").glob("*.png")):
        image, label = by_stamp[frame.stem]
        shutil.copy(frame, out / "images" / frame.name)
        shutil.copy(label, out / "masks" / frame.name)
        names.append(image.stem)
    classes = {"names": list(CAMVID.names), "colors": [list(c) for c in CAMVID.colors],
               "ignore_index": CAMVID.ignore_index}
    (out / "classes.yaml").write_text(yaml.safe_dump(classes, sort_keys=False))
    # The drive's other frames (CamVid's own PNGs) are the dataset's val split: scored,
    # never trained on or selected on (the run keeps its last weights).
    for image, label in pairs:
        if image.stem not in names:
            shutil.copy(image, out / "images" / image.name)
            shutil.copy(label, out / "masks" / image.name)
    train = sorted(p.stem for p in (extract / "images").glob("*.png"))
    val = sorted(p.stem for p in pairs_not_in(pairs, names))
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "val.txt").write_text("\n".join(val) + "\n")
    return names


def pairs_not_in(pairs: List[tuple], names: List[str]) -> List[Path]:
    return [image for image, _ in pairs if image.stem not in names]


def score(checkpoint: str, drive: str, labelled: List[str], *extra: str) -> Dict[str, float]:
    rest = json.loads(canet("evaluate", "--checkpoint", checkpoint, "--holdout", drive,
                            "--exclude", *labelled, "--json", *extra, capture=True))
    val = json.loads(canet("evaluate", "--checkpoint", checkpoint, "--split", "val",
                           "--json", *extra, capture=True))
    seen = rest.get("seen_in_training")
    if seen:  # the start, its ancestors or the replay saw the "new camera"
        raise SystemExit(f"{checkpoint}: trained on {seen} of the {rest['frames']} frames of "
                         f"{drive} scored as new; start from a model that never saw {drive}")
    return {"rest_miou": rest["miou"], "rest_frames": rest["frames"],
            "rest_global": rest["global_acc"], "val_miou": val["miou"]}


def train_args(args: argparse.Namespace) -> List[str]:
    """Return the --train-arg list, with the replay kept off the drive unless it says."""
    if any(a.startswith("--replay-exclude") for a in args.train_arg):
        return list(args.train_arg)
    return [f"--replay-exclude={args.drive}", *args.train_arg]


def run_count(args: argparse.Namespace, bag: Path, pairs: List[tuple], n: int) -> Dict:
    work = args.out / f"n{n:03d}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    canet("extract-frames", str(bag), "--topic", TOPIC, "--max", str(n), "--checkpoint",
          args.start, "--out", str(work / "extract"))
    labelled = make_dataset(work / "extract", pairs, work / "dataset")
    before = score(args.start, args.drive, labelled)
    cpu0, wall0 = cpu_seconds(), time.time()
    canet("train", "--config", str(args.config), "--data-root", str(work / "dataset"),
          "--init-weights", args.start, "--val-sets", "--out-dir", str(work / "run"),
          "--no-progress", *train_args(args))
    cpu, wall = cpu_seconds() - cpu0, time.time() - wall0
    after = score(str(work / "run" / "last.pt"), args.drive, labelled)
    row = {"labelled": n, "frames": labelled, "train_cpu_s": round(cpu, 1),
           "train_wall_s": round(wall, 1), "before": before, "after": after}
    if (work / "run" / "model.pt").is_file():  # the checkpoint the recipe ships
        row["after_shipped"] = score(str(work / "run" / "model.pt"), args.drive, labelled)
    if args.correction is not None:
        row["after_corrected"] = score(str(work / "run" / "last.pt"), args.drive, labelled,
                                       "--prior-correction", str(args.correction))
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", required=True, help="checkpoint that never saw --drive")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--drive", default="0006R0")
    ap.add_argument("--counts", type=int, nargs="+", default=[5, 10, 20, 40])
    ap.add_argument("--config", type=Path,
                    default=REPO / "canet_ros/training/configs/own_data_finetune.yaml")
    ap.add_argument("--camvid-root", type=Path, default=default_root())
    ap.add_argument("--correction", type=float, default=None,
                    help="also score the fine-tuned model with this prior correction")
    ap.add_argument("--train-arg", action="append", default=[],
                    help="extra canet train argument (repeat; --train-arg=--lr=5e-4)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = drive_pairs(args.camvid_root, args.drive)
    bag = args.out / f"{args.drive}_bag"
    if not bag.exists():
        write_bag(bag, pairs, quality=95)
    rows = [run_count(args, bag, pairs, n) for n in args.counts]
    summary = {"start": args.start, "drive": args.drive, "config": str(args.config),
               "train_args": train_args(args), "rows": rows}
    (args.out / "study.json").write_text(json.dumps(summary, indent=1))
    for r in rows:
        after = r.get("after_shipped", r["after"])
        print(f"N={r['labelled']:3d}: rest of drive {100 * r['before']['rest_miou']:.1f} -> "
              f"{100 * after['rest_miou']:.1f} mIoU, val {100 * r['before']['val_miou']:.1f}"
              f" -> {100 * after['val_miou']:.1f}, train CPU {r['train_cpu_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

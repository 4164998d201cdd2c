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

"""``gpu_check.py prepare``: lay out what travels to the GPU machine (docs/gpu_check.md).

The payload folder holds ``wheels/`` (cp312 manylinux wheels of the packages the GPU
image lacks) and ``camvid/`` (CamVid train+val in the SegNet layout, frames as JPEG,
labels as lossless PNG). Frames keep their ``.png`` names although they hold JPEG bytes:
OpenCV decodes by content, and identical names keep the drive prefixes, so the SegNet
split and ``--holdout`` work unchanged.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

MIB = 2 ** 20
# What the device tool carries in one call: working tree + carried paths together.
CARRY_LIMIT_MIB = 64.0
# Other sessions' untracked files can grow the tree between prepare and the call.
MARGIN_MIB = 1.0
# The package's runtime needs that the GPU image lacks (docs/gpu_check.md), with theirs.
RUNTIME_WHEELS = ("rosbags", "apsw", "backports.zstd", "lz4", "ruamel.yaml", "mcap",
                  "zstandard")
OPTIONAL_WHEELS = ("av",)  # segment-bag --video only; ~34 MiB, carried only if it fits
# Installed on the GPU image (.library/device/KINDS.md): requirements the wheels may rely on.
DEVICE_HAS = {"numpy", "typing-extensions", "opencv-python-headless", "pyyaml", "tqdm",
              "matplotlib", "torch", "torchvision", "onnx", "onnxruntime", "tensorboard",
              "pytest", "pillow", "packaging", "setuptools", "wheel"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
EXTRA_PLATFORMS = ("manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64",
                   "manylinux_2_35_x86_64")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
TARGET_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "os_name": "posix",
              "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}


class PrepareError(Exception):
    """Something prepare cannot do; the message names what and why."""


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of '-', '_' and '.' as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    return canonical(path.name.split("-")[0])


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def tree_bytes(repo: Path) -> int:
    """Bytes of what the device tool sends besides carried paths: tracked + untracked, unignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=repo, capture_output=True)
    if listed.returncode != 0:
        raise PrepareError(f"{repo} is not a git checkout: the device tool sends a git working "
                           "tree, so prepare runs in one")
    out = listed.stdout.decode()
    total = 0
    for rel in {p for p in out.split("\0") if p}:
        path = repo / rel
        if path.is_symlink():
            total += len(str(path.readlink()))
        elif path.is_file():
            total += path.stat().st_size
    return total


# -- wheels ----------------------------------------------------------------------------------
def installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise PrepareError(f"{name} is not installed in {sys.executable}: run prepare with "
                           "the project's .venv/bin/python (its versions are the tested ones)"
                           ) from None


def _pip_download(name: str, version: str, dest: Path, platforms: tuple[str, ...]) -> bool:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for plat in platforms:
        cmd += ["--platform", plat]
    done = subprocess.run(cmd + [f"{name}=={version}"], capture_output=True, text=True)
    return done.returncode == 0


def fetch_wheel(name: str, dest: Path) -> Path:
    """Return the cp312 manylinux wheel of ``name`` at this interpreter's version, in ``dest``."""
    version = installed_version(name)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):  # one version of each: two stop the whole install
        if wheel_name(old) == canonical(name) and old.name.split("-")[1] != version:
            old.unlink()
    found = [p for p in dest.glob("*.whl") if wheel_name(p) == canonical(name)]
    if not found:
        if not (_pip_download(name, version, dest, PLATFORMS)
                or _pip_download(name, version, dest, PLATFORMS + EXTRA_PLATFORMS)):
            raise PrepareError(f"pip found no cp312 manylinux x86_64 wheel of {name}=={version}")
        found = [p for p in dest.glob("*.whl") if wheel_name(p) == canonical(name)]
    return found[0]


def unmet_requirements(wheels: list[Path]) -> list[str]:
    """Requires-Dist entries (CPython 3.12, Linux) that neither the wheels nor the image meet."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return []
    have = {wheel_name(w) for w in wheels} | DEVICE_HAS
    unmet = []
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            lines = z.read(meta).decode("utf-8", "replace").splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is not None and not req.marker.evaluate({**TARGET_ENV, "extra": ""}):
                continue
            if canonical(req.name) not in have:
                unmet.append(f"{whl.name} needs {req}")
    return unmet


# -- CamVid ----------------------------------------------------------------------------------
def _compact_pair(src: Path, dst: Path, split: str, name: str, size: tuple[int, int],
                  quality: int) -> None:
    import cv2

    frame = cv2.imread(str(src / split / name), cv2.IMREAD_COLOR)
    label = cv2.imread(str(src / f"{split}annot" / name), cv2.IMREAD_UNCHANGED)
    if frame is None or label is None:
        raise PrepareError(f"{src / split / name}: frame or its label cannot be read")
    if label.ndim == 3:
        label = label[..., 0]
    width, height = frame.shape[1], frame.shape[0]
    if width > size[0] or height > size[1]:  # only ever shrink, keeping the aspect ratio
        scale = min(size[0] / width, size[1] / height)
        new = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame, new, interpolation=cv2.INTER_AREA)
        label = cv2.resize(label, new, interpolation=cv2.INTER_NEAREST)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise PrepareError(f"{src / split / name}: JPEG encoding failed")
    (dst / split / name).write_bytes(jpeg.tobytes())
    cv2.imwrite(str(dst / f"{split}annot" / name), label, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def compact_camvid(src: Path, dst: Path, size: tuple[int, int], quality: int,
                   progress: bool = True) -> dict[str, Any]:
    """Write the compact copy of train+val; reuse an existing one made the same way."""
    names = {}
    for split in ("train", "val"):
        if not (src / split).is_dir() or not (src / f"{split}annot").is_dir():
            raise PrepareError(f"{src}: no {split}/ and {split}annot/ (SegNet-layout CamVid)")
        names[split] = sorted(p.name for p in (src / split).iterdir()
                              if p.suffix.lower() in IMAGE_EXTS)
    manifest = {"source": src.name, "max_size": list(size), "jpeg_quality": quality,
                "frames": {k: len(v) for k, v in names.items()},
                "first_last": {k: [v[0], v[-1]] if v else [] for k, v in names.items()}}
    stamp = dst / "manifest.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == manifest:
        return manifest
    if dst.exists():
        shutil.rmtree(dst)
    from canet_ros.progress import progress as progress_bar

    for split, split_names in names.items():
        (dst / split).mkdir(parents=True)
        (dst / f"{split}annot").mkdir(parents=True)
        for name in progress_bar(split_names, desc=f"CamVid {split}", unit="frame",
                                 disable=not progress, file=sys.stderr):
            _compact_pair(src, dst, split, name, size, quality)
    (dst / "README.txt").write_text(
        "Compact CamVid train+val for tools/gpu_check.py (SegNet layout). Frames hold JPEG "
        f"bytes (quality {quality}) under their original .png names; labels are lossless "
        "PNGs. Scores on it differ slightly from the PNG originals: re-score a checkpoint "
        "here before comparing with the model card.\n")
    stamp.write_text(json.dumps(manifest, indent=1))
    return manifest


# -- the whole step --------------------------------------------------------------------------
def device_call(payload_rel: str) -> dict[str, Any]:
    """Return the device tool's ``run`` arguments that ``gpu_check.py run`` needs."""
    return {"carry": [payload_rel],
            "command": "PYTHONUNBUFFERED=1 python3 tools/gpu_check.py run",
            "timeout_s": 540}


def _wheels(dest: Path, with_av: str, room: float) -> tuple[list[Path], list[str]]:
    """Needed wheels, then the optional ones while they fit in ``room`` bytes."""
    notes = []
    wheels = [fetch_wheel(name, dest) for name in RUNTIME_WHEELS]
    unmet = unmet_requirements(wheels)
    if unmet:
        raise PrepareError("wheels whose requirements nothing carries: " + "; ".join(unmet))
    for name in OPTIONAL_WHEELS if with_av != "no" else ():
        cache = dest.parent.parent / "cache"
        whl = fetch_wheel(name, cache)
        size = whl.stat().st_size
        for old in dest.glob("*.whl"):
            if wheel_name(old) == canonical(name):
                old.unlink()
        if with_av == "yes" or size <= room - sum(w.stat().st_size for w in wheels):
            wheels.append(Path(shutil.copy2(whl, dest / whl.name)))
        else:
            notes.append(f"{name} ({size / MIB:.1f} MiB) left out: it does not fit; "
                         "segment-bag --video is not checked there")
    return wheels, notes


def prepare(repo: Path, payload: Path, camvid: Path | None, size: tuple[int, int],
            quality: int, wheels: bool, with_av: str, budget_mib: float,
            progress: bool = True) -> dict[str, Any]:
    """Lay out ``payload`` (wheels/, camvid/); raise PrepareError if it cannot travel."""
    payload.mkdir(parents=True, exist_ok=True)
    limit = (budget_mib - MARGIN_MIB) * MIB
    tree = tree_bytes(repo)
    report: dict[str, Any] = {"payload": os.path.relpath(payload, repo), "notes": []}
    if camvid is not None:
        report["camvid"] = compact_camvid(camvid, payload / "camvid", size, quality, progress)
    elif not (payload / "camvid").is_dir():
        report["notes"].append("no CamVid copy: run's training step will be skipped")
    if wheels:
        room = limit - tree - folder_bytes(payload / "camvid")
        found, notes = _wheels(payload / "wheels", with_av, room)
        report["wheels"] = sorted(w.name for w in found)
        report["notes"] += notes
    sizes = {"tree": tree, "wheels": folder_bytes(payload / "wheels"),
             "camvid": folder_bytes(payload / "camvid")}
    sizes["total"] = sum(sizes.values())
    report["mib"] = {k: round(v / MIB, 2) for k, v in sizes.items()}
    report["budget_mib"] = budget_mib
    report["device_call"] = device_call(report["payload"])
    if sizes["total"] > limit:
        raise PrepareError(
            f"{report['payload']}: {sizes['total'] / MIB:.1f} MiB would travel (tree "
            f"{report['mib']['tree']}, wheels {report['mib']['wheels']}, CamVid "
            f"{report['mib']['camvid']} MiB), over the {budget_mib:g} MiB carry budget less "
            f"{MARGIN_MIB:g} MiB margin: lower --quality or --size, or leave something out")
    return report


def describe(report: dict[str, Any]) -> str:
    """Return what prepare made and the exact device-tool call, for a person to copy."""
    mib = report["mib"]
    lines = [f"payload {report['payload']}: wheels {mib['wheels']} MiB, CamVid "
             f"{mib['camvid']} MiB; with the working tree ({mib['tree']} MiB) "
             f"{mib['total']} MiB of the {report['budget_mib']:g} MiB carry budget"]
    if report.get("wheels"):
        lines.append("wheels: " + ", ".join(report["wheels"]))
    if report.get("camvid"):
        lines.append(f"CamVid frames: {report['camvid']['frames']}")
    lines += [f"note: {n}" for n in report["notes"]]
    call = report["device_call"]
    lines += ["device tool call (run):",
              f"  carry:     {json.dumps(call['carry'])}",
              f"  command:   {call['command']}",
              f"  timeout_s: {call['timeout_s']}"]
    return "\n".join(lines)


def dry_subset(src: Path, dst: Path, per_drive: int = 4) -> Path:
    """Return the first few frames of each drive in each split, linked: same files, tiny epochs."""
    for split in ("train", "val"):
        if not (src / split).is_dir():
            continue
        taken: dict[str, int] = {}
        for name in sorted(p.name for p in (src / split).iterdir()):
            drive = name.split("_")[0]
            if taken.get(drive, 0) >= per_drive:
                continue
            taken[drive] = taken.get(drive, 0) + 1
            for folder in (split, f"{split}annot"):
                (dst / folder).mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src / folder / name, dst / folder / name)
                except OSError:  # another file system
                    shutil.copy2(src / folder / name, dst / folder / name)
    return dst

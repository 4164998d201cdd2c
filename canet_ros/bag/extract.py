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

"""Frames worth labelling out of a bag, with a model's labels as pre-labels (extract-frames).

Which frames: the topic's time span (receive times) is cut into ``max_frames`` equal
slots, none shorter than ``min_interval``; each slot gives at most one frame, the first
one that is not a near-duplicate of a frame already kept. Near-duplicate: the mean
absolute difference of two 32x24 grey thumbnails (area-averaged, 0-255 scale) below
``duplicate_threshold``: a robot standing still, or a camera that repeats frames. Within
a slot at most ``PROBES`` frames are decoded and compared, evenly spread, so a long stop
costs a few decodes per slot, not one per message. Frames are named by their header
stamps, ``<sec>_<nanosec, 9 digits>`` (the receive time where the stamp is zero).

Output (docs/own_data.md): classes.yaml, images/, prelabels/ (the model's index masks),
cvat/ and cvat.zip (the pre-labels as a CVAT "Segmentation mask 1.1" package),
extract.json (source, topic, stamps, model, settings) and .canet_extract_frames (the mark
that lets --overwrite replace the folder, even one a kill or a full disk cut short).
While a run writes OUTDIR it holds OUTDIR.extract_frames.lock beside it: a second run
into OUTDIR is refused.
"""
from __future__ import annotations

import bisect
import contextlib
import errno
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from ..atomic_write import write_atomic
from ..classes import ClassSet
from ..data.classes_file import save_classes
from ..data.cvat import PackageWriter
from ..folder_lock import FolderLock
from ..image_codec import ImageCodecError, to_frame
from ..image_files import save_image
from ..progress import progress
from .errors import BagError
from .outdir import check_creatable, check_not_around_inputs, lock_beside
from .reader import InputBag, describe_exception, frame_stamp
from .stages import sigint_deferred

THUMB_SIZE = (32, 24)  # W, H
PROBES = 8  # frames examined per slot at most
REPORT = "extract.json"
# Written first, so that --overwrite knows a folder a kill or a full disk cut short, whose
# extract.json (written last) is missing; a folder of an older version has extract.json.
MARKER = ".canet_extract_frames"
LOCK = ".extract_frames.lock"  # beside OUTDIR while a run writes it (removed when it ends)
# What a run writes (masks/ is the labeller's, allowed here while empty).
_OURS = frozenset({MARKER, REPORT, "images", "prelabels", "cvat", "cvat.zip", "classes.yaml",
                   "masks"})


@dataclass
class ExtractOptions:
    source: Path
    outdir: Path
    topic: str | None = None
    max_frames: int = 50
    min_interval: float = 1.0  # seconds between kept frames, at least
    duplicate_threshold: float = 4.0  # mean |grey difference| of thumbnails, 0-255
    prelabels: bool = True
    overwrite: bool = False
    salvage: bool = True
    progress: bool = False
    exclude_topics: tuple = ()  # not chosen as the camera when --topic is not given


def thumbnail(frame_rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two thumbnails (0 = identical, 255 = opposite)."""
    return float(np.mean(np.abs(a - b)))


@dataclass
class FramePicker:
    """Decides, message by message, which frames to examine and which to keep.

    The messages may come in any time order (a split bag whose files overlap in time is
    read file by file): slots come from the earliest and latest time, and a frame is
    compared with every kept frame, not only the last one.
    """

    t0: int  # ns, earliest and latest receive time on the topic
    t1: int
    max_frames: int
    min_interval_ns: int
    threshold: float
    kept: list = field(default_factory=list)  # (time, thumbnail)
    duplicates: int = 0
    examined: int = 0

    def __post_init__(self) -> None:
        span = max(self.t1 - self.t0, 0)
        self.slot_ns = max(span / self.max_frames, float(self.min_interval_ns), 1.0)
        self._filled: set = set()
        self._times: list = []  # kept times, sorted
        self._probe: tuple = (-1, 0)  # slot and time of the last frame examined

    def _slot(self, t: int) -> int:
        return min(int((t - self.t0) // self.slot_ns), self.max_frames - 1)

    def wants(self, t: int) -> bool:
        """Whether the message at ``t`` is worth decoding."""
        slot = self._slot(t)
        if len(self.kept) >= self.max_frames or slot in self._filled:
            return False
        at = bisect.bisect_left(self._times, t)
        near = self._times[max(at - 1, 0): at + 1]  # the kept times either side of t
        if any(abs(t - k) < self.min_interval_ns for k in near):
            return False
        last_slot, last_t = self._probe
        return not (slot == last_slot and abs(t - last_t) < self.slot_ns / PROBES)

    def offer(self, t: int, thumb: np.ndarray) -> bool:
        """Keep the decoded frame at ``t`` unless it repeats one already kept."""
        self.examined += 1
        self._probe = (self._slot(t), t)
        if any(difference(thumb, k) < self.threshold for _, k in self.kept):
            self.duplicates += 1
            return False
        self._filled.add(self._slot(t))
        self.kept.append((t, thumb))
        bisect.insort(self._times, t)
        return True


def stamp_stem(header: Any, receive_ns: int) -> tuple[str, int]:
    """``<sec>_<nanosec:09d>`` of the header stamp (of the receive time if it is zero)."""
    stamp = frame_stamp(header, receive_ns)
    sec, nsec = divmod(stamp, 1_000_000_000)
    return f"{sec}_{nsec:09d}", stamp


def check_extract_outdir(outdir: Path, overwrite: bool) -> None:
    """Refuse an existing OUTDIR unless --overwrite, it is ours and holds no labels yet."""
    if not outdir.exists() and not outdir.is_symlink():
        check_creatable(outdir)
        return
    if not outdir.is_dir():
        raise BagError(f"{outdir}: exists and is not a folder")
    if not any(outdir.iterdir()):
        return
    if not overwrite:
        raise BagError(f"{outdir}: output folder exists; pass --overwrite to replace it")
    if not (outdir / MARKER).is_file() and not (outdir / REPORT).is_file():
        raise BagError(f"{outdir}: exists and was not written by canet extract-frames (no "
                       f"{MARKER} or {REPORT}); refusing to delete it, remove it yourself")
    masks = outdir / "masks"
    if masks.is_dir() and any(masks.iterdir()):
        raise BagError(f"{outdir}: holds labelled masks ({masks}); --overwrite would delete "
                       f"them: move them away or extract into another folder")
    # A labeller's work lands beside ours (an unpacked CVAT export, train.txt): never delete it.
    theirs = sorted(p.name for p in outdir.iterdir() if p.name not in _OURS)
    if theirs:
        raise BagError(f"{outdir}: holds {', '.join(theirs)}, which extract-frames did not "
                       f"write; --overwrite would delete them: move them away or extract "
                       f"into another folder")


def extract_lock(outdir: Path) -> FolderLock:
    """Return the lock a run holds while it writes OUTDIR: beside it, as --overwrite deletes it."""
    return FolderLock(outdir, lock_beside(outdir, LOCK), "extract-frames", BagError)


def _prepare(outdir: Path, prelabels: bool) -> None:
    try:
        if outdir.exists():
            shutil.rmtree(outdir)
        outdir.mkdir(parents=True)
        (outdir / MARKER).write_text("written by canet extract-frames\n", encoding="utf-8")
        for sub in ("images", "prelabels")[: 2 if prelabels else 1]:
            (outdir / sub).mkdir()
    except OSError as exc:
        raise BagError(f"{outdir}: cannot create output folder ({_why(exc)})") from None


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:  # the usual cause on a robot's small disk: say it plainly
        return f"{os.strerror(errno.ENOSPC)} (ENOSPC)"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def _writing(outdir: Path, path: Path | None = None) -> Iterator[None]:
    """Turn a failed write into one line naming the file and the cause, errno name included.

    ``path``: the file being written, named where the error does not (a write's ENOSPC has
    no file name).
    """
    try:
        yield
    except OSError as exc:
        # write_atomic's WriteError: the kernel's error is its cause.
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        where = path or cause.filename or outdir  # not the temp file write_atomic fills
        raise BagError(f"{where}: cannot write ({_why(cause)}); {outdir} is incomplete: "
                       f"rerun with --overwrite once this is fixed") from None


class FrameExtractor:
    """One bag checked and opened; ``run(engine, class_set)`` writes the frames."""

    def __init__(self, options: ExtractOptions):
        self.options = o = options
        if o.max_frames < 1 or o.min_interval < 0 or o.duplicate_threshold < 0:
            raise BagError("--max must be at least 1, --min-interval and "
                           "--duplicate-threshold at least 0")
        self.bag = InputBag(o.source, o.salvage)
        check_not_around_inputs(o.outdir, [o.source])
        if not o.outdir.exists():
            check_creatable(o.outdir)  # in its own words, before the lock makes the parent
        # Held to the end, taken before OUTDIR is looked at: another run may be writing it,
        # and --overwrite deletes it.
        self.lock = extract_lock(o.outdir)
        self.lock.acquire_exclusive()
        try:
            check_extract_outdir(o.outdir, o.overwrite)
            self.bag.open_reader()
            self.topic = self.bag.select_topic(o.topic, list(o.exclude_topics))
        except BaseException:
            self.close()
            raise
        self.frames: list[dict] = []
        self.skipped: list[dict] = []
        self.duplicate_stems = 0

    def close(self) -> None:
        try:
            self.bag.close()
        finally:
            self.lock.release()

    def _times(self) -> list[int]:
        """Receive times of every message on the topic (no decoding)."""
        return [m.timestamp for m in self.bag.messages(self.topic.name)]

    def _decode(self, raw: bytes, timestamp: int, position: int | None
                ) -> tuple[Any, Any] | None:
        try:
            msg = self.bag.deserialize(raw, self.topic.msgtype)
            return msg, to_frame(msg, "rgb")
        except ImageCodecError as exc:
            why = f"cannot decode: {exc}"
        except Exception as exc:  # rosbags raises many types for damaged messages
            why = f"cannot deserialise: {describe_exception(exc)}"
        self.skipped.append({"position": position, "receive_ns": timestamp, "reason": why})
        return None

    def _repeated(self, msg: Any, timestamp: int) -> bool:
        """Say whether a kept frame has this stamp: the same frame twice, not to be offered."""
        stem, _ = stamp_stem(msg.header, timestamp)
        if any(f["stem"] == stem for f in self.frames):
            self.duplicate_stems += 1
            return True
        return False

    def _keep(self, msg: Any, frame: np.ndarray, timestamp: int, position: int | None,
              engine: Any, writer: PackageWriter | None) -> None:
        stem, stamp = stamp_stem(msg.header, timestamp)
        labels = None
        if engine is not None and writer is not None:  # the slow part, before any file
            labels = np.asarray(engine.infer(frame, "rgb").labels).astype(np.uint8)
        out = self.options.outdir
        written = [out / "images" / f"{stem}.png", out / "prelabels" / f"{stem}.png"]
        try:
            with _writing(out):
                save_image(written[0], cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if labels is not None:
                    save_image(written[1], labels)
                    writer.add(stem, labels)
            self.frames.append({"stem": stem, "stamp_ns": stamp, "receive_ns": timestamp,
                                "position": position})
        except BaseException:  # Ctrl-C between the files: no part of this frame stays
            for path in written:
                path.unlink(missing_ok=True)
            if writer is not None:
                writer.discard(stem)
            raise

    def run(self, engine: Any, class_set: ClassSet) -> dict[str, Any]:
        """Pick, write and pre-label the frames; extract.json is written even if interrupted."""
        o = self.options
        times = self._times()
        if not times:
            raise BagError(f"{o.source}: topic {self.topic.name} has no messages")
        _prepare(o.outdir, engine is not None)
        with _writing(o.outdir):
            save_classes(o.outdir, class_set)
            writer = PackageWriter(o.outdir / "cvat", class_set) if engine is not None else None
        picker = FramePicker(min(times), max(times), o.max_frames, int(o.min_interval * 1e9),
                             o.duplicate_threshold)
        bar = progress(total=len(times), unit="msg", desc=o.source.name,
                       disable=not o.progress, file=sys.stderr)
        interrupted = False
        with contextlib.ExitStack() as ending:
            try:
                self._pick(picker, engine, writer, bar)
            except KeyboardInterrupt:
                interrupted = True
            finally:  # from here to extract.json, a second Ctrl-C waits
                ending.enter_context(sigint_deferred("canet extract-frames: finishing "
                                                     f"{o.outdir}"))
                bar.close()
                if writer is not None:
                    with _writing(o.outdir):
                        writer.close(o.outdir / "cvat.zip")
            return self._report(engine, class_set, picker, times, interrupted)

    def _pick(self, picker: FramePicker, engine: Any, writer: PackageWriter | None,
              bar: Any) -> None:
        # position: on the topic in the intact bag; None after a loss of unknown size in a
        # damaged one (the read order would name another message).
        for timestamp, raw, position in self.bag.messages(self.topic.name):
            bar.update(1)
            if not picker.wants(timestamp):
                continue
            decoded = self._decode(raw, timestamp, position)
            # A repeated stamp is checked before the offer, so it leaves its slot open.
            if (decoded is not None and not self._repeated(decoded[0], timestamp)
                    and picker.offer(timestamp, thumbnail(decoded[1]))):
                self._keep(*decoded, timestamp, position, engine, writer)

    def _report(self, engine: Any, class_set: ClassSet, picker: FramePicker,
                times: list[int], interrupted: bool) -> dict[str, Any]:
        o = self.options
        damage = self.bag.damage
        model = None
        if engine is not None:
            model = {"checkpoint": str(engine.checkpoint_path), "backbone": engine.backbone,
                     "resolution": list(engine.resolution)}
        report = {
            "source": str(o.source), "storage": self.bag.storage, "topic": self.topic.name,
            "message_type": self.topic.msgtype, "messages": len(times),
            "span_s": (max(times) - min(times)) / 1e9, "frames": self.frames,
            "model": model, "prelabels": engine is not None, "classes": list(class_set.names),
            "settings": {"max_frames": o.max_frames, "min_interval_s": o.min_interval,
                         "duplicate_threshold": o.duplicate_threshold,
                         "thumbnail": list(THUMB_SIZE), "slot_s": picker.slot_ns / 1e9,
                         "probes_per_slot": PROBES},
            "examined": picker.examined, "duplicates_skipped": picker.duplicates,
            "repeated_stamps_skipped": self.duplicate_stems, "skipped": self.skipped,
            "damage": damage.as_dict([self.topic.name]) if damage else None,
            "interrupted": interrupted}
        data = (json.dumps(report, indent=2) + "\n").encode("utf-8")
        # Whole or not at all: a full disk left it 0 bytes, which passed for a finished run.
        with _writing(o.outdir, o.outdir / REPORT):
            write_atomic(o.outdir / REPORT, lambda fh: fh.write(data), needed=len(data))
        return report


def checkpoint_class_set(checkpoint: Any) -> ClassSet:
    """Return the classes a checkpoint was trained for, read from its metadata (no model built)."""
    from ..checkpoint import class_set_from_metadata, read_checkpoint

    return class_set_from_metadata(read_checkpoint(checkpoint))


def extract_frames(options: ExtractOptions, engine_factory: Callable[[], Any] | None,
                   checkpoint: Any = "default") -> dict[str, Any]:
    """Check, open and extract one bag.

    ``engine_factory`` None: no pre-labels, the classes from ``checkpoint``'s metadata.
    """
    job = FrameExtractor(options)  # every input/output check before the model load
    try:
        if engine_factory is None:
            return job.run(None, checkpoint_class_set(checkpoint))
        engine = engine_factory()
        return job.run(engine, engine.class_set)
    finally:
        job.close()

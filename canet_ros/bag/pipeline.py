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

"""Segment one bag: check it, open it, run the three stages (stages.py), report."""
from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from ..image_codec import ImageCodecError, native_order, to_frame
from ..metrics import ConfusionMatrix
from ..progress import progress
from .errors import BagError
from .groundtruth import DirGroundTruth, GroundTruth, GroundTruthError, TopicGroundTruth
from .outdir import (
    NAME_MAX,
    StagedOutdir,
    check_not_around_inputs,
    check_outdir,
    fit_name,
    staging_path,
)
from .reader import InputBag, TopicSummary, describe_exception, frame_stamp, ros2_header
from .report import RunStats, build_report, engine_fields, write_report
from .salvage.damage import Recovered
from .sample import accuracy_note, sample_gt_mismatch
from .stages import (
    END,
    Failure,
    Feed,
    FrameItem,
    Skipped,
    WriterThread,
    put_until,
    sigint_deferred,
)
from .writer import OutputBag, OutputTopics, check_storage, copy_of_ros1_message


@dataclass
class SegmentOptions:
    source: Path  # the bag: folder, .mcap, .db3 or .bag
    outdir: Path
    topic: str | None = None
    gt_topic: str | None = None
    gt_dir: Path | None = None
    storage: str = "mcap"
    compression: str | None = None  # None: zstd for MCAP, none for sqlite3
    video: bool = False
    copy_input: bool = False
    overwrite: bool = False
    progress: bool = False
    salvage: bool = True  # read what is readable in a damaged bag (docs: Damaged bags)
    queue_size: int = 2  # decoded frames waiting for the engine; each adds a frame of latency
    gt_topic_implied: bool = False  # --gt-topic chosen for the user (the sample)
    # Where the outputs end up when ``outdir`` is a staging folder (a folder of bags that
    # replaces an earlier run's): the report names these paths.
    final_outdir: Path | None = None


# The output bag folder holds <its name>.mcap or .db3, and sqlite3's <name>.db3-journal.
_BAG_FILE_ROOM = len(".db3-journal")
# SQLite (unix VFS) opens no database whose absolute path plus "-journal" is over 512 bytes.
_SQLITE_PATH_MAX = 512
_SUFFIX = "_segmented"


def output_bag_name(path: Path, storage: str = "mcap", outdir: Path | None = None) -> str:
    """<input name>_segmented, shortened (fit_name) where its files' paths would not fit.

    For sqlite3 the database's whole path counts, written in ``outdir`` or beside it (a
    rerun's OUTDIR.partial); BagError where even a shortened name cannot fit there.
    """
    max_bytes = NAME_MAX - _BAG_FILE_ROOM
    if storage == "sqlite3" and outdir is not None:
        folder = len(os.fsencode(os.path.abspath(staging_path(outdir))))
        # folder/<name>/<name>.db3-journal
        max_bytes = min(max_bytes, (_SQLITE_PATH_MAX - folder - 2 - _BAG_FILE_ROOM) // 2)
    name = fit_name(path.stem if path.is_file() else path.name, _SUFFIX, max_bytes)
    if len(os.fsencode(name)) > max_bytes:  # only where OUTDIR's own path is most of 512
        raise BagError(f"{outdir}: too long a path for a sqlite3 output bag (SQLite opens "
                       f"paths of up to {_SQLITE_PATH_MAX} bytes); choose a shorter --out "
                       f"or --storage mcap")
    return name


def check_options(options: SegmentOptions) -> None:
    """Check what the arguments alone can show to be wrong, before any bag is opened."""
    if options.gt_topic and options.gt_dir:
        raise BagError("give --gt-topic or --gt-dir, not both")
    if options.gt_dir is not None and not options.gt_dir.is_dir():
        raise BagError(f"{options.gt_dir}: ground-truth folder does not exist")
    if options.topic and options.topic == options.gt_topic:
        if options.gt_topic_implied:
            raise BagError(f"--topic {options.topic} is the ground-truth topic of this bag "
                           f"(used as --gt-topic for you); choose the camera topic")
        raise BagError(f"--topic and --gt-topic name the same topic {options.topic}")
    check_storage(options.storage, options.compression)


class BagJob:
    """One input bag checked and opened; ``run(engine)`` segments it into OUTDIR."""

    def __init__(self, options: SegmentOptions):
        self.options = options
        check_options(options)
        self.bag = InputBag(options.source, options.salvage)  # checks the format only
        check_not_around_inputs(options.outdir, [options.source])
        check_outdir(options.outdir, options.overwrite)
        self.bag_name = output_bag_name(options.source, options.storage, options.outdir)
        self.bag.open_reader()
        self.video: Any = None
        try:
            exclude = [options.gt_topic] if options.gt_topic else []
            self.topic: TopicSummary = self.bag.select_topic(options.topic, exclude)
            self.gt: GroundTruth | None = None
            if options.gt_topic:
                self.gt = TopicGroundTruth(self.bag, options.gt_topic)
            elif options.gt_dir:
                self.gt = DirGroundTruth(options.gt_dir)
        except BaseException:
            self.bag.close()
            raise
        self.topics = OutputTopics.for_input(self.topic.name)
        self.workdir = options.outdir  # beside OUTDIR while an earlier run's is replaced
        self.out: OutputBag | None = None

    def close(self) -> None:
        self.bag.close()

    def output_bag(self) -> OutputBag:
        copy = (self.topic.name, self.topic.msgtype) if self.options.copy_input else None
        return OutputBag(self.workdir / self.bag_name, self.options.storage, self.topics, copy,
                         self.options.compression)

    def describe(self) -> dict[str, Any]:
        o = self.options
        out = self.out
        damage = self.bag.damage
        gt_topics = [o.gt_topic] if o.gt_topic else []
        final = (o.final_outdir or o.outdir).resolve()  # the report names where files end up
        video = self.video.describe() if self.video is not None else None
        if video is not None and video["path"]:  # None: no frame, so no file
            video["path"] = str(final / Path(video["path"]).name)
        return {"input": str(o.source.resolve()), "input_storage": self.bag.storage,
                "topic": self.topic.name, "message_type": self.topic.msgtype,
                "output_bag": str(final / self.bag_name), "storage": o.storage,
                "compression": out.compression if out else None,
                "output_size_bytes": out.size_bytes()
                if out and (self.workdir / self.bag_name).is_dir() else None,
                "output_topics": self.topics.as_dict(), "copied_input": o.copy_input,
                "ground_truth": self.gt.summary() if self.gt else None,
                "damage": damage.as_dict([self.topic.name, *gt_topics]) if damage else None,
                "frames_lost": damage.lost_on(self.topic.name) if damage else 0,
                "video": video}

    # -- reader thread -------------------------------------------------------------------
    def _decode(self, index: int, message: Recovered, t_read: float, stats: RunStats) -> Any:
        timestamp, raw, position = message
        where = position if position is not None else index
        try:
            msg = self.bag.deserialize(raw, self.topic.msgtype)
        except Exception as exc:
            stats.skip(where, timestamp, f"cannot deserialise: {describe_exception(exc)}")
            return Skipped(index)
        try:
            order = native_order(msg)
            frame = to_frame(msg, order)
        except ImageCodecError as exc:
            stats.skip(where, timestamp, f"cannot decode: {exc}")
            return Skipped(index)
        except MemoryError:  # one frame too large for this machine: not a damaged bag
            stats.skip(where, timestamp, "cannot decode: not enough memory for the image")
            return Skipped(index)
        item = FrameItem(index, position, timestamp, ros2_header(msg.header), frame, order,
                         t_read)
        if self.options.copy_input:
            if self.bag.is_ros1:
                item.copy_msg = copy_of_ros1_message(msg, self.topic.msgtype, item.header)
            else:
                item.raw = raw
        if self.gt is not None:
            self._attach_gt(item, frame_stamp(msg.header, timestamp))
        return item

    def _attach_gt(self, item: FrameItem, stamp: int) -> None:
        assert self.gt is not None
        item.gt_stamp = stamp
        try:
            item.gt = self.gt.lookup(item.position, stamp)
        except GroundTruthError as exc:
            item.gt_note = ("unusable", str(exc))
            return
        if item.gt is None:
            item.gt_note = ("missing", self.gt.missing_reason(item.position))

    def _read_loop(self, feed: Feed, stats: RunStats) -> None:
        index = -1
        try:
            if self.gt is not None:
                self.gt.prepare()
            messages = iter(self.bag.messages(self.topic.name))
            while feed.reserve():
                t_read = perf_counter()
                message = next(messages, None)
                if message is None:
                    feed.put(END)
                    return
                index += 1
                feed.put(self._decode(index, message, t_read, stats))
        except Exception as exc:
            where = f"after {index + 1} messages" if index >= 0 else "at the start"
            feed.put(Failure(f"{self.options.source}: corrupt or truncated bag, reading "
                             f"failed {where} ({describe_exception(exc)})"))

    # -- main thread ---------------------------------------------------------------------
    def _infer_loop(self, engine: Any, feed: Feed, writer: WriterThread,
                    stats: RunStats, bar: Any) -> None:
        while True:
            try:
                item = feed.get()
            except queue.Empty:
                if not writer.alive.is_set():
                    raise BagError(writer.error or "the writer stopped") from None
                continue
            if item is END:
                return
            if isinstance(item, Failure):
                raise BagError(item.message)
            if isinstance(item, FrameItem):
                start = perf_counter()
                try:
                    result = engine.infer(item.frame, item.order, color=True, overlay=True)
                except Exception as exc:
                    raise BagError(f"{self.options.source}: inference failed on message "
                                   f"{item.index} ({describe_exception(exc)})") from None
                stats.infer_s.append(perf_counter() - start)
                item.frame = None  # the queued result must not pin the decoded frame
                if not put_until(writer.q_out, (item, result), writer.alive):
                    raise BagError(writer.error or "the writer stopped")
            bar.update(1)
            if stats.infer_s and bar.n % 5 == 0:
                bar.set_postfix(model_fps=f"{len(stats.infer_s) / sum(stats.infer_s):.1f}",
                                refresh=False)

    def run(self, engine: Any) -> dict[str, Any]:
        """Segment every frame; the report is written even when interrupted or failing."""
        o = self.options
        staged = StagedOutdir(o.outdir, o.overwrite)
        self.workdir = staged.path
        stats = RunStats(frames_total=self.topic.count)
        self.gt_note = sample_gt_mismatch(engine.class_set) if o.gt_topic_implied else None
        if self.gt_note:
            self.gt = None
        if self.gt is not None:
            stats.confusion = ConfusionMatrix(engine.num_classes, engine.class_set.ignore_index)
            self.gt.set_classes(engine.num_classes, engine.class_set.ignore_index)
        self.out = self.output_bag()
        self.out.describe_classes(engine.class_set)
        self.video = self._video(engine)
        writer = WriterThread(self.out, o.copy_input, queue.Queue(2 * o.queue_size), stats,
                              self.video)
        feed = Feed(o.queue_size)
        reader = threading.Thread(target=self._read_loop, args=(feed, stats),
                                  name="segment-bag-reader", daemon=True)
        bar = progress(total=self.topic.count, unit="frame", desc=o.source.name,
                       disable=not o.progress, file=sys.stderr)
        start = perf_counter()
        with contextlib.ExitStack() as ending:
            try:
                writer.start()
                writer.ready.wait()
                if not writer.alive.is_set():
                    raise BagError(writer.error or "the writer stopped")
                reader.start()
                self._infer_loop(engine, feed, writer, stats, bar)
            except KeyboardInterrupt:
                stats.interrupted = True
            except BagError as exc:
                stats.error = str(exc)
            finally:  # from here to the report in place, a second Ctrl-C waits
                ending.enter_context(sigint_deferred())
                feed.alive.clear()
                put_until(writer.q_out, END, writer.alive)
                if writer.is_alive():
                    writer.join()
                if reader.is_alive():
                    reader.join(timeout=10)
                bar.close()
            stats.wall_s = perf_counter() - start
            if writer.error and not stats.error:
                stats.error = writer.error
            return self._finish(staged, engine, stats)

    def _video(self, engine: Any) -> Any:
        if not self.options.video:
            return None
        from .video import OverlayVideo

        return OverlayVideo(self.workdir, engine.class_set.names, engine.class_set.palette())

    def _finish(self, staged: StagedOutdir, engine: Any, stats: RunStats) -> dict[str, Any]:
        report = self._report(engine, stats)
        try:
            report = write_report(report, self.workdir,
                                  f"{self.options.source.name}: per-class IoU")
        except BagError as exc:
            # A full disk usually failed the bag first: that is the cause worth naming.
            error = f"{stats.error}; {exc}" if stats.error else str(exc)
            if not staged.staged:
                raise BagError(error) from None
            report = {**report, "error": error}  # finish_staged keeps the earlier output
        return finish_staged(staged, report)

    def _report(self, engine: Any, stats: RunStats) -> dict[str, Any]:
        model = engine_fields(engine)
        report = build_report(stats, self.describe(), model, engine.class_set.names,
                              engine.class_set.ignore_index, engine.class_set.palette())
        # Always present (null with nothing scored), as docs/segment_bag.md lists it.
        report["accuracy_note"] = None
        if "miou" in report:
            report["accuracy_note"] = accuracy_note(
                self.options.source, model["checkpoint"], self.options.gt_topic,
                report["ground_truth"]["frames_with_gt"])
        if self.gt_note:
            report["ground_truth_note"] = self.gt_note
        return report


def finish_staged(staged: StagedOutdir, report: dict[str, Any]) -> dict[str, Any]:
    """Put a complete run in OUTDIR; an interrupted or failed one leaves the earlier output."""
    if not staged.staged:
        return report
    with sigint_deferred():
        if report.get("interrupted") or report.get("error"):
            staged.discard()
            return {**report, "previous_output_kept": str(staged.final)}
        staged.commit()
    return report


def segment_bag(engine: Any, options: SegmentOptions) -> dict[str, Any]:
    """Check, open, segment and report one bag with ``engine`` (a SegmentationEngine)."""
    job = BagJob(options)
    try:
        return job.run(engine)
    finally:
        job.close()

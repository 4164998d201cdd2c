"""Segment one bag with three overlapping threads.

A reader thread decodes, the main thread runs the engine, a writer thread serialises and
writes. Bounded queues keep memory flat; torch and OpenCV release the GIL, so decoding and
writing overlap inference.
"""
from __future__ import annotations

import contextlib
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
from tqdm import tqdm

from ..image_codec import ImageCodecError, native_order, to_frame
from ..metrics import ConfusionMatrix
from .errors import BagError
from .groundtruth import DirGroundTruth, GroundTruth, GroundTruthError, TopicGroundTruth
from .outdir import check_not_around_inputs, check_outdir, prepare_outdir
from .reader import InputBag, TopicSummary, describe_exception, ros2_header, stamp_ns
from .report import RunStats, build_report, engine_fields, write_report
from .writer import OutputBag, OutputTopics, copy_of_ros1_message

_END = object()
_POLL_S = 0.1


@dataclass
class SegmentOptions:
    source: Path  # the bag: folder, .mcap, .db3 or .bag
    outdir: Path
    topic: str | None = None
    gt_topic: str | None = None
    gt_dir: Path | None = None
    storage: str = "mcap"
    video: bool = False
    copy_input: bool = False
    overwrite: bool = False
    progress: bool = False
    queue_size: int = 2  # decoded frames waiting for the engine; each adds a frame of latency


@dataclass
class FrameItem:
    index: int
    timestamp: int
    header: Any
    frame: np.ndarray | None
    order: str
    t_read: float
    raw: bytes | None = None  # ROS 2 input to copy verbatim
    copy_msg: Any = None  # ROS 1 input to copy, converted to Humble
    gt: np.ndarray | None = None


@dataclass
class Skipped:
    index: int


@dataclass
class Failure:
    message: str


def output_bag_name(path: Path) -> str:
    return f"{path.stem if path.is_file() else path.name}_segmented"


def _put(q: queue.Queue, item: Any, alive: threading.Event) -> bool:
    """Block until queued, or give up once ``alive`` is cleared (the other side is gone)."""
    while alive.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class _Feed:
    """Decoded frames for the engine.

    The reader reserves a slot before it reads a message, so at most ``size`` frames are
    decoded ahead: memory stays flat and a frame's latency counts only the frames queued in
    front of it.
    """

    def __init__(self, size: int):
        self.queue: queue.Queue = queue.Queue()
        self.slots = threading.Semaphore(max(1, size))
        self.alive = threading.Event()
        self.alive.set()

    def reserve(self) -> bool:
        while self.alive.is_set():
            if self.slots.acquire(timeout=_POLL_S):
                return True
        return False

    def put(self, item: Any) -> None:
        self.queue.put(item)

    def get(self) -> Any:
        item = self.queue.get(timeout=_POLL_S)
        if isinstance(item, (FrameItem, Skipped)):
            self.slots.release()
        return item


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """While the output bag is being finished, a second Ctrl-C must not leave it broken."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(*_: object) -> None:
        print("canet segment-bag: finishing the output bag, please wait", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _WriterThread(threading.Thread):
    """Owns the output bag (sqlite3 needs one thread), the metrics and the video."""

    def __init__(self, job: BagJob, q_out: queue.Queue, stats: RunStats, video: Any):
        super().__init__(name="segment-bag-writer", daemon=True)
        self.job, self.q_out, self.stats, self.video = job, q_out, stats, video
        self.out = job.output_bag()
        self.ready = threading.Event()
        self.alive = threading.Event()
        self.alive.set()
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.out.create()
            self.ready.set()
            while True:
                entry = self.q_out.get()
                if entry is _END:
                    break
                self._write(*entry)
        except Exception as exc:
            self.error = (str(exc) if isinstance(exc, BagError) else
                          f"{self.out.path}: writing failed ({describe_exception(exc)})")
        finally:
            self.alive.clear()
            self.ready.set()
            try:
                self.out.close()
            except BagError as exc:
                self.error = self.error or str(exc)
            if self.video is not None:
                self.video.close()

    def _write(self, item: FrameItem, result: Any) -> None:
        self.out.write_frame(item.timestamp, item.header, result.labels, result.color,
                             result.overlay, item.order)
        if self.job.options.copy_input:
            self.out.write_input(item.timestamp, item.raw, item.copy_msg)
        stats = self.stats
        if item.gt is not None and stats.confusion is not None:
            if item.gt.shape != result.labels.shape:
                stats.gt_problem(f"size {item.gt.shape[1]}x{item.gt.shape[0]} differs from "
                                 f"the frame's")
            else:
                stats.confusion.update(result.labels, item.gt)
                stats.gt_scored += 1
        if self.video is not None:
            self.video.write(result.overlay, item.order)
        stats.frames += 1
        stats.last_timestamp = item.timestamp
        stats.latency_s.append(perf_counter() - item.t_read)


class BagJob:
    """One input bag checked and opened; ``run(engine)`` segments it into OUTDIR."""

    def __init__(self, options: SegmentOptions):
        self.options = options
        if options.gt_topic and options.gt_dir:
            raise BagError("give --gt-topic or --gt-dir, not both")
        self.bag = InputBag(options.source)  # checks the format without opening
        check_not_around_inputs(options.outdir, [options.source])
        check_outdir(options.outdir, options.overwrite)
        self.bag.open_reader()
        try:
            exclude = [options.gt_topic] if options.gt_topic else []
            self.topic: TopicSummary = self.bag.select_topic(options.topic, exclude)
            self.gt: GroundTruth | None = None
            if options.gt_topic:
                if options.gt_topic == self.topic.name:
                    raise BagError(f"{options.source}: --gt-topic is the topic being segmented")
                self.gt = TopicGroundTruth(self.bag, options.gt_topic)
            elif options.gt_dir:
                self.gt = DirGroundTruth(options.gt_dir)
        except BaseException:
            self.bag.close()
            raise
        self.topics = OutputTopics.for_input(self.topic.name)
        self.bag_path = options.outdir / output_bag_name(options.source)

    def close(self) -> None:
        self.bag.close()

    def output_bag(self) -> OutputBag:
        copy = (self.topic.name, self.topic.msgtype) if self.options.copy_input else None
        return OutputBag(self.bag_path, self.options.storage, self.topics, copy)

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {"input": str(o.source.resolve()), "input_storage": self.bag.storage,
                "topic": self.topic.name, "message_type": self.topic.msgtype,
                "output_bag": str(self.bag_path.resolve()), "storage": o.storage,
                "output_topics": self.topics.as_dict(), "copied_input": o.copy_input,
                "ground_truth": self.gt.summary() if self.gt else None,
                "video": str((o.outdir / "overlay.mp4").resolve()) if o.video else None}

    # -- reader thread -------------------------------------------------------------------
    def _decode(self, index: int, timestamp: int, raw: bytes, t_read: float,
                stats: RunStats) -> Any:
        try:
            msg = self.bag.deserialize(raw, self.topic.msgtype)
        except Exception as exc:
            stats.skip(index, timestamp, f"cannot deserialise: {describe_exception(exc)}")
            return Skipped(index)
        try:
            order = native_order(msg)
            frame = to_frame(msg, order)
        except ImageCodecError as exc:
            stats.skip(index, timestamp, f"cannot decode: {exc}")
            return Skipped(index)
        item = FrameItem(index, timestamp, ros2_header(msg.header), frame, order, t_read)
        if self.options.copy_input:
            if self.bag.is_ros1:
                item.copy_msg = copy_of_ros1_message(msg, self.topic.msgtype, item.header)
            else:
                item.raw = raw
        if self.gt is not None:
            try:
                item.gt = self.gt.lookup(index, stamp_ns(msg.header))
            except GroundTruthError as exc:
                stats.gt_problem(str(exc))
            else:
                stats.gt_missing += item.gt is None
        return item

    def _read_loop(self, feed: _Feed, stats: RunStats) -> None:
        index = -1
        try:
            if self.gt is not None:
                self.gt.prepare()
            messages = iter(self.bag.messages(self.topic.name))
            while feed.reserve():
                t_read = perf_counter()
                message = next(messages, None)
                if message is None:
                    feed.put(_END)
                    return
                index += 1
                feed.put(self._decode(index, message[0], message[1], t_read, stats))
        except Exception as exc:
            where = f"after {index + 1} messages" if index >= 0 else "at the start"
            feed.put(Failure(f"{self.options.source}: corrupt or truncated bag, reading "
                             f"failed {where} ({describe_exception(exc)})"))

    # -- main thread ---------------------------------------------------------------------
    def _infer_loop(self, engine: Any, feed: _Feed, writer: _WriterThread,
                    stats: RunStats, bar: tqdm) -> None:
        while True:
            try:
                item = feed.get()
            except queue.Empty:
                if not writer.alive.is_set():
                    raise BagError(writer.error or "the writer stopped") from None
                continue
            if item is _END:
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
                if not _put(writer.q_out, (item, result), writer.alive):
                    raise BagError(writer.error or "the writer stopped")
            bar.update(1)
            if stats.infer_s and bar.n % 5 == 0:
                bar.set_postfix(model_fps=f"{len(stats.infer_s) / sum(stats.infer_s):.1f}",
                                refresh=False)

    def run(self, engine: Any) -> dict[str, Any]:
        """Segment every frame; the report is written even when interrupted or failing."""
        o = self.options
        prepare_outdir(o.outdir, o.overwrite)
        stats = RunStats(frames_total=self.topic.count)
        if self.gt is not None:
            stats.confusion = ConfusionMatrix(engine.num_classes, engine.class_set.ignore_index)
        writer = _WriterThread(self, queue.Queue(2 * o.queue_size), stats, self._video(engine))
        feed = _Feed(o.queue_size)
        reader = threading.Thread(target=self._read_loop, args=(feed, stats),
                                  name="segment-bag-reader", daemon=True)
        bar = tqdm(total=self.topic.count, unit="frame", desc=o.source.name,
                   disable=not o.progress, dynamic_ncols=True, file=sys.stderr)
        start = perf_counter()
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
        finally:
            with _sigint_deferred():
                feed.alive.clear()
                _put(writer.q_out, _END, writer.alive)
                if writer.is_alive():
                    writer.join()
                if reader.is_alive():
                    reader.join(timeout=10)
                bar.close()
        stats.wall_s = perf_counter() - start
        if writer.error and not stats.error:
            stats.error = writer.error
        return self._report(engine, stats)

    def _video(self, engine: Any) -> Any:
        if not self.options.video:
            return None
        from .video import OverlayVideo

        fps = self.bag.frame_rate(self.topic) or 10.0
        return OverlayVideo(self.options.outdir / "overlay.mp4", fps, engine.class_set.names,
                            engine.class_set.palette())

    def _report(self, engine: Any, stats: RunStats) -> dict[str, Any]:
        report = build_report(stats, self.describe(), engine_fields(engine),
                              engine.class_set.names, engine.class_set.ignore_index)
        return write_report(report, self.options.outdir, f"{self.options.source.name}: per-class "
                            f"IoU")


def segment_bag(engine: Any, options: SegmentOptions) -> dict[str, Any]:
    """Check, open, segment and report one bag with ``engine`` (a SegmentationEngine)."""
    job = BagJob(options)
    try:
        return job.run(engine)
    finally:
        job.close()

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

"""The CamVid sample bag shipped with the package (built by tools/make_sample_bag.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLE_NAME = "sample"  # the literal INPUT that means this bag on the command line
SAMPLE_BAG = Path(__file__).resolve().parents[1] / "samples" / "camvid_sample"
SAMPLE_IMAGE_TOPIC = "/camera/image_raw/compressed"
SAMPLE_GT_TOPIC = "/camera/segmentation/ground_truth"

# Which frames the sample holds (tools/make_sample_bag.py: every 12th frame of CamVid val).
SAMPLE_FRAME_COUNT = 8
SAMPLE_FRAMES = f"{SAMPLE_FRAME_COUNT} CamVid val frames of drive 0016E5"
# Their files (sorted CamVid val, every 12th), and a CamVid train frame of the same drive:
# a run that trained on it has seen the drive, though not these frames.
SAMPLE_FRAME_NAMES = tuple(f"0016E5_{n:05d}.png" for n in range(7959, 8128, 24))
DRIVE_TRAIN_FRAME = "0016E5_00390.png"


def accuracy_note(source: Path, checkpoint: str | None, gt_topic: str | None,
                  frames_scored: int) -> str | None:
    """Return what the sample's score means, for the summary, report.json and report.md.

    None for any other bag, or for the sample scored against labels other than its own
    ground-truth topic (the user's --gt-dir). The bundled model trained on 0016E5 and was
    selected on val, so its score here is not what a new camera gets: the model card's
    held-out figures are. Another checkpoint's note says what its training saw, judged as
    ``canet evaluate``'s seen_in_training is (its train_args and --init-weights lineage).
    """
    if source.resolve() != SAMPLE_BAG or gt_topic != SAMPLE_GT_TOPIC:
        return None
    from ..checkpoint import DEFAULT_CHECKPOINT

    frames = (SAMPLE_FRAMES if frames_scored == SAMPLE_FRAME_COUNT else
              f"{frames_scored} of the {SAMPLE_FRAMES}")  # a run stopped early
    if checkpoint is None or Path(checkpoint).resolve() != DEFAULT_CHECKPOINT.resolve():
        return f"scored on {frames}{_training_note(checkpoint)}"
    return (f"scored on {frames}, which the bundled model trained on (that drive) "
            f"and was selected on (val), so this flatters it: on a new camera expect 40-55 "
            f"mIoU (41.2 on a CamVid drive kept out of training; "
            f"canet_ros/weights/MODEL_CARD.md)")


def _training_note(checkpoint: str | None) -> str:
    """Say whether ``checkpoint``'s training saw the sample's frames or their drive."""
    seen = None if checkpoint is None else _seen(checkpoint)
    if seen is None:
        return ("; if this checkpoint trained on CamVid train it has seen this drive (its "
                "training data is not recorded), and this is not a held-out score")
    frames, drive = seen
    if frames:
        return (f"; this checkpoint's weights trained on {frames} of them (by its run or a "
                f"run its --init-weights came from), so this is not a held-out score")
    if drive:
        return ("; this checkpoint's training saw other frames of this drive (CamVid "
                "train), not these, so this flatters it against a new camera")
    return ", which this checkpoint's training never saw, nor any frame of this drive"


def _seen(checkpoint: str) -> tuple[int, bool] | None:
    """(sample frames the training saw, whether it saw drive 0016E5); None: not recorded."""
    from ..checkpoint import CheckpointError, read_checkpoint, resolve_checkpoint
    from ..data.seen import count_seen

    try:
        path = resolve_checkpoint(checkpoint).resolve()
        meta = read_checkpoint(path)
    except CheckpointError:
        return None
    args, lineage = meta.get("train_args") or {}, meta.get("lineage")
    # CamVid frames are matched by split folder and name; this root exists nowhere, so no
    # dataset folder of the user's can match it by accident.
    root = SAMPLE_BAG / "camvid"
    frames = count_seen(args, [root / "val" / n for n in SAMPLE_FRAME_NAMES], path.parent,
                        lineage)
    if frames is None:
        return None
    drive = count_seen(args, [root / "train" / DRIVE_TRAIN_FRAME], path.parent, lineage)
    return frames, bool(drive)


def sample_gt_mismatch(class_set: Any) -> str | None:
    """Why the sample's CamVid ground truth cannot score a model of ``class_set`` (or None).

    Its label images hold CamVid ids; another model's ids mean other classes, so a score
    would compare Sky with whatever that model's class 0 is.
    """
    from ..classes import CAMVID

    if (tuple(class_set.names) == CAMVID.names
            and class_set.ignore_index == CAMVID.ignore_index):
        return None
    return (f"the sample's ground truth was not scored: it holds CamVid's {CAMVID.num_classes} "
            f"classes, and the model predicts {class_set.num_classes} others "
            f"({', '.join(class_set.names[:4])}{', ...' if class_set.num_classes > 4 else ''})"
            f"; score your own camera with --gt-dir or --gt-topic")

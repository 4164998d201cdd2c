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


def accuracy_note(source: Path, checkpoint: str | None, gt_topic: str | None,
                  frames_scored: int) -> str | None:
    """Return what the sample's score means, for the summary, report.json and report.md.

    None for any other bag, or for the sample scored against labels other than its own
    ground-truth topic (the user's --gt-dir). The bundled model trained on 0016E5 and was
    selected on val, so its score here is not what a new camera gets: the model card's
    held-out figures are.
    """
    if source.resolve() != SAMPLE_BAG or gt_topic != SAMPLE_GT_TOPIC:
        return None
    from ..checkpoint import DEFAULT_CHECKPOINT

    frames = (SAMPLE_FRAMES if frames_scored == SAMPLE_FRAME_COUNT else
              f"{frames_scored} of the {SAMPLE_FRAMES}")  # a run stopped early
    if checkpoint is None or Path(checkpoint).resolve() != DEFAULT_CHECKPOINT.resolve():
        return (f"scored on {frames}; a model trained on CamVid train has seen this "
                f"drive, so this is not a held-out score")
    return (f"scored on {frames}, which the bundled model trained on (that drive) "
            f"and was selected on (val), so this flatters it: on a new camera expect 40-55 "
            f"mIoU (41.2 on a CamVid drive kept out of training; "
            f"canet_ros/weights/MODEL_CARD.md)")


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

"""The CamVid sample bag shipped with the package (built by tools/make_sample_bag.py)."""
from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "sample"  # the literal INPUT that means this bag on the command line
SAMPLE_BAG = Path(__file__).resolve().parents[1] / "samples" / "camvid_sample"
SAMPLE_IMAGE_TOPIC = "/camera/image_raw/compressed"
SAMPLE_GT_TOPIC = "/camera/segmentation/ground_truth"

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

SAMPLE_NAME = "sample"  # the literal INPUT that means this bag on the command line
SAMPLE_BAG = Path(__file__).resolve().parents[1] / "samples" / "camvid_sample"
SAMPLE_IMAGE_TOPIC = "/camera/image_raw/compressed"
SAMPLE_GT_TOPIC = "/camera/segmentation/ground_truth"

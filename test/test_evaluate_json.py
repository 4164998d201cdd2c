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

"""``canet evaluate --json`` is strict JSON even where no pixel could be scored.

Python's json writes NaN, which jq and strict parsers refuse; a split whose labels are all
the ignore id gave ``"miou": NaN``. segment-bag writes null for the same case, and so does
evaluate now. (A folder dataset refuses such a split: test_data_all_ignored.py.)
"""
from __future__ import annotations

import json

import cv2
import numpy as np

from canet_ros.classes import CAMVID
from canet_ros.cli import main


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def test_a_split_with_nothing_scored_gives_null_scores(tmp_path, capsys):
    # A folder dataset refuses such a split (its check names it); CamVid's layout is not
    # checked for labels, so its all-void labels still reach the scoring.
    rng = np.random.default_rng(0)
    root = tmp_path / "camvid"
    for folder in ("val", "valannot"):
        (root / folder).mkdir(parents=True)
    cv2.imwrite(str(root / "val" / "0016E5_00000.png"),
                rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "valannot" / "0016E5_00000.png"),
                np.full((48, 64), CAMVID.ignore_index, np.uint8))
    assert main(["evaluate", "--checkpoint", "default", "--dataset", "camvid", "--data-root",
                 str(root), "--split", "val", "--device", "cpu", "--resolution", "64x48",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert result["pixels"] == 0 and result["frames"] == 1
    assert result["miou"] is None and result["global_acc"] is None

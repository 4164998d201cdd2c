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

Python's json writes NaN, which jq and strict parsers refuse; a split whose masks are all
the ignore id (a dataset check accepts it) gave ``"miou": NaN``. segment-bag writes null
for the same case, and so does evaluate now.
"""
from __future__ import annotations

import json

import numpy as np

from canet_ros.classes import CAMVID
from canet_ros.cli import main
from canet_ros.data import write_dataset


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def test_a_split_with_nothing_scored_gives_null_scores(tmp_path, capsys):
    rng = np.random.default_rng(0)
    items = [(f"f{i}", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8),
              np.full((48, 64), CAMVID.ignore_index, np.uint8)) for i in range(2)]
    root = write_dataset(tmp_path / "ds", CAMVID, items, {"train": ["f0"], "val": ["f1"]})
    assert main(["evaluate", "--checkpoint", "default", "--dataset", "folder", "--data-root",
                 str(root), "--split", "val", "--device", "cpu", "--resolution", "64x48",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert result["pixels"] == 0 and result["frames"] == 1
    assert result["miou"] is None and result["global_acc"] is None

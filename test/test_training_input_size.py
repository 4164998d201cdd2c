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

"""Which network input size a fine-tune records: the starting checkpoint's, unless given.

The recorded size is what the node and every ``canet`` command run the exported model at,
so a fine-tune on a 1920x1200 camera must not quietly become a 1920x1200 model. It used to,
but only when ``--mean``/``--std`` were given as well.
"""
import pytest
from test_evaluate import _tiny_checkpoint
from test_own_dataset import THREE, item

from canet_ros.data import write_dataset
from canet_ros.training import merge_config
from canet_ros.training.data_setup import build_data

START_SIZE = [24, 18]  # _tiny_checkpoint's, unlike the frames' 16x12


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("input_size")
    data = write_dataset(root / "data", THREE, [item(i) for i in range(6)])
    return data, _tiny_checkpoint(root / "start.pt", input_size=tuple(START_SIZE))


def _input_size(folders, **given):
    data, start = folders
    cfg = merge_config({}, {"dataset": "folder", "data_root": str(data), "cache": False,
                            "init_weights": str(start), **given})
    return build_data(cfg, verbose=False).input_size


def test_a_fine_tune_keeps_the_starting_checkpoints_size(folders):
    assert _input_size(folders) == START_SIZE


def test_its_own_mean_and_std_do_not_change_the_size(folders):
    assert _input_size(folders, mean=[0.4] * 3, std=[0.2] * 3) == START_SIZE
    assert _input_size(folders, mean=[0.4] * 3) == START_SIZE


def test_a_given_size_wins(folders):
    assert _input_size(folders, mean=[0.4] * 3, std=[0.2] * 3, input_size=[32, 32]) == [32, 32]


def test_without_a_starting_checkpoint_the_frames_size(folders):
    data, _ = folders
    cfg = merge_config({}, {"dataset": "folder", "data_root": str(data), "cache": False})
    assert build_data(cfg, verbose=False).input_size == [16, 12]

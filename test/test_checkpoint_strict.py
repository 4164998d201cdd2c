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


"""Checkpoint weights load strictly: a missing or an extra key is refused, by name.

The wrong-architecture tests in test_checkpoint.py also change tensor shapes, which fail
even a lenient load; here every tensor that is present has the right shape.
"""
import pytest
import torch

from canet_ros.checkpoint import (
    CheckpointError,
    build_metadata,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from canet_ros.classes import CAMVID
from canet_ros.models import build_canet


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "m.pt", model,
                           build_metadata("mobilenetv2", CAMVID, input_size=(64, 48)))
    load_checkpoint(path)  # the untouched file loads
    return read_checkpoint(path)


def test_missing_key_is_refused_by_name(tmp_path, blob):
    forged = dict(blob, state_dict=dict(blob["state_dict"]))
    del forged["state_dict"]["classifier.weight"]
    torch.save(forged, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt: weights do not fit this "
                                              r"architecture: .*Missing key.*classifier\.weight"):
        load_checkpoint(tmp_path / "missing.pt")


def test_extra_key_is_refused_by_name(tmp_path, blob):
    forged = dict(blob, state_dict=dict(blob["state_dict"]))
    forged["state_dict"]["aux_head.weight"] = torch.zeros(11, 32, 1, 1)
    torch.save(forged, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"extra\.pt: weights do not fit this "
                                              r"architecture: .*Unexpected key.*aux_head\.weight"):
        load_checkpoint(tmp_path / "extra.pt")

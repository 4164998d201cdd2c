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

"""No export child where the cache's disk has no room for the export it would keep.

Before, a full disk with a writable cache folder still got a child: its export could not
be cached, so the start exported a second time in-process and kept torch loaded anyway
(~1.09 GB against 354 MB, 15.5 s against 9.8 s, at every start).
"""
import collections
import logging
import shutil
import sys

import pytest

from canet_ros.inference import export_child, onnx_runtime  # noqa: F401 (loaded before)

MB = 1000 * 1000
Usage = collections.namedtuple("Usage", "total used free")


@pytest.fixture
def no_torch_here(monkeypatch, tmp_path):
    """Make this process look as the node's: torch not loaded, a writable cache of its own."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delenv(export_child.IN_CHILD, raising=False)
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    checkpoint = tmp_path / "model.pt"
    with open(checkpoint, "wb") as fh:
        fh.truncate(10 * MB)  # only its size is read
    return checkpoint


def _free(monkeypatch, free):
    seen = []

    def disk_usage(path):
        seen.append(str(path))
        return Usage(10 ** 12, 10 ** 12 - free, free)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    return seen


def test_a_full_disk_gets_no_child(no_torch_here, monkeypatch, caplog):
    _free(monkeypatch, 0)
    with caplog.at_level(logging.WARNING, "canet_ros.inference"):
        assert not export_child.worth_a_child()
    assert not export_child.worth_a_child(no_torch_here)
    text = caplog.text
    assert "only 0 MB free" in text and "torch loaded" in text and "CANET_ROS_CACHE" in text


def test_room_for_the_checkpoints_export_gets_a_child(no_torch_here, monkeypatch, tmp_path):
    seen = _free(monkeypatch, 40 * MB)  # a 10 MB fp16 file: 20 MB fp32 graph, 5 MB int8
    assert export_child.worth_a_child(no_torch_here)
    # Asked of the cache's disk: its nearest folder that exists (the export makes the rest).
    assert seen == [str(tmp_path)]


def test_too_little_room_for_the_checkpoints_export_gets_no_child(
        no_torch_here, monkeypatch, caplog):
    _free(monkeypatch, 15 * MB)  # its fp32 graph alone would not fit
    with caplog.at_level(logging.WARNING, "canet_ros.inference"):
        assert not export_child.worth_a_child(no_torch_here)
    assert "model.pt" in caplog.text and "15 MB free" in caplog.text


def test_a_disk_that_cannot_be_asked_leaves_it_to_the_child(no_torch_here, monkeypatch):
    def disk_usage(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    assert export_child.worth_a_child(no_torch_here)


def test_a_full_tmpfs_gets_no_child(no_torch_here, monkeypatch, small_tmpfs):
    # The real file system, where it can be had: a 64 KiB tmpfs as the cache.
    monkeypatch.setenv("CANET_ROS_CACHE", str(small_tmpfs("64k")))
    assert not export_child.worth_a_child(no_torch_here)


def test_the_engine_asks_for_room_for_its_own_checkpoint(monkeypatch, tmp_path):
    # Without the path the child's room was judged for an unknown large model (256 MB).
    from canet_ros.checkpoint import resolve_checkpoint
    from canet_ros.inference import SegmentationEngine

    class Asked(Exception):
        pass

    seen = []

    def worth_a_child(path=None):
        seen.append(path)
        raise Asked

    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))  # no entry: an export
    monkeypatch.setattr(export_child, "say_exporting", lambda *args: True)
    monkeypatch.setattr(export_child, "worth_a_child", worth_a_child)
    with pytest.raises(Asked):
        SegmentationEngine("default", device="cpu", runtime="onnxruntime", warmup=False,
                           export_in_child=True)
    assert seen == [resolve_checkpoint("default")]

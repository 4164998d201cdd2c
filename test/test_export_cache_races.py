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

"""The ONNX export cache under concurrent writers: replaced checkpoints, killed writes.

A checkpoint replaced while an engine loads and exports it (``canet train`` renaming a
new best.pt into place, a deploy's ``mv``) must not get the old weights' export filed
under the new file's hash: every later start would run the old model without torch.
A write killed mid-way leaves a temp file in the shared cache folder; old ones are swept.
"""
import os
import shutil
import time

import numpy as np
import pytest
import torch

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.inference import SegmentationEngine, onnx_runtime
from canet_ros.inference import torch_backend as tb
from canet_ros.models import build_canet

RES = (96, 64)
SKY = 0  # B's class everywhere


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A.pt (varied labels) and B.pt (A with class 0's bias raised: class 0 everywhere)."""
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(3)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
    meta = build_metadata("mobilenetv2", CAMVID, input_size=RES)
    a = save_checkpoint(tmp_path / "A.pt", model, meta)
    with torch.no_grad():
        model.classifier.bias[SKY] += 1000.0
    b = save_checkpoint(tmp_path / "B.pt", model, meta)
    frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    frame[20:50, 30:80] = (30, 160, 90)
    return a, b, frame


def _replace(source, target):
    """Replace ``target`` as canet train's atomic write does: a finished copy renamed over it."""
    tmp = target.with_name(f".{target.name}.new")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


@pytest.mark.parametrize("when", ["during the export", "before the load"])
def test_a_checkpoint_replaced_during_its_export_never_runs_the_old_weights_later(
        weights, tmp_path, monkeypatch, caplog, when):
    a, b, frame = weights
    path = tmp_path / "model.pt"
    shutil.copyfile(a, path)
    real_export, real_load = tb.export_onnx, tb.load_checkpoint

    def export_then_replace(*args, **kwargs):
        data = real_export(*args, **kwargs)
        _replace(b, path)  # the window between the load and the hash the cache is keyed by
        return data

    def replace_then_load(*args, **kwargs):
        _replace(b, path)  # after any hash taken before the load, before the weights are read
        return real_load(*args, **kwargs)

    if when == "during the export":
        monkeypatch.setattr(tb, "export_onnx", export_then_replace)
    else:
        monkeypatch.setattr(tb, "load_checkpoint", replace_then_load)
    SegmentationEngine(path, device="cpu", warmup=False)  # the start the replacement races
    monkeypatch.setattr(tb, "export_onnx", real_export)
    monkeypatch.setattr(tb, "load_checkpoint", real_load)

    assert path.read_bytes() == b.read_bytes()
    later = SegmentationEngine(path, device="cpu", warmup=False)  # B now, cache warm
    labels = later.infer(frame).labels
    assert later.runtime == "onnxruntime"
    assert (labels == SKY).all(), "a later start on the new file runs the old weights"
    # A rolled back into place must run A, not an export filed under A's hash.
    _replace(a, path)
    again = SegmentationEngine(path, device="cpu", warmup=False).infer(frame).labels
    assert (again != SKY).mean() > 0.3  # A's labels are varied (B's are all class 0)
    torch_a = SegmentationEngine(a, device="cpu", runtime="torch", warmup=False)
    assert (again == torch_a.infer(frame).labels).mean() > 0.99
    assert "changed while it was loaded and exported" in caplog.text


def test_an_unchanged_checkpoint_is_still_cached(weights, tmp_path, caplog):
    a, _, frame = weights
    first = SegmentationEngine(a, device="cpu", warmup=False).infer(frame).labels
    assert "changed while" not in caplog.text
    assert onnx_runtime.cached_graph(onnx_runtime.file_digest(a), RES) is not None
    np.testing.assert_array_equal(
        SegmentationEngine(a, device="cpu", warmup=False).infer(frame).labels, first)


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_storing_a_graph_removes_temp_files_that_killed_writes_left(tmp_path, monkeypatch):
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path))
    folder = tmp_path / "onnx"
    folder.mkdir()
    dead = [folder / ".0123abcd_96x64_g2_op17.onnx.k3j_9x2a.tmp",  # a killed export
            folder / ".0123abcd.json.abcdefgh.tmp",
            folder / ".canet_55aa.onnx.zzzzzzzz.tmp"]
    live = folder / ".feed_96x64_g3_op17.onnx.a1b2c3d4.tmp"  # a write under way now
    others = [folder / ".notes.txt.abcdefgh.tmp",      # not a cache file's temp
              folder / "x.onnx.abcdefgh.tmp",          # no leading dot
              folder / ".x.onnx.ABCDEFGH.tmp",         # not mkstemp's characters
              folder / ".x.onnx.abcdefg.tmp",          # 7 characters
              folder / "kept_96x64.onnx"]
    for path in dead + [live] + others:
        path.write_bytes(b"partial graph")
    for path in dead + others:
        _age(path, 2 * 3600)
    named_dir = folder / ".y.onnx.abcdefgh.tmp"
    named_dir.mkdir()
    _age(named_dir, 2 * 3600)
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"not ours")
    link = folder / ".z.onnx.abcdefgh.tmp"
    link.symlink_to(outside)
    _age(link, 2 * 3600)

    onnx_runtime.store_graph("d" * 32, dict(build_metadata("mobilenetv2", CAMVID)), RES,
                             b"fp32 graph")
    assert [p for p in dead if p.exists()] == []
    assert live.exists() and all(p.exists() for p in others)
    assert named_dir.is_dir() and link.is_symlink() and outside.exists()
    entry = onnx_runtime.cached_graph("d" * 32, RES)
    assert entry is not None and entry.path.read_bytes() == b"fp32 graph"


def test_a_start_from_the_cache_removes_old_temp_files_too(tmp_path, monkeypatch):
    # A killed first start, then cached starts only: no store ever comes to sweep.
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path))
    onnx_runtime.store_graph("e" * 32, dict(build_metadata("mobilenetv2", CAMVID)), RES,
                             b"fp32 graph")
    dead = tmp_path / "onnx" / ".eeee_96x64_g3_op17.onnx.abcdefgh.tmp"
    dead.write_bytes(b"partial graph")
    _age(dead, 2 * 3600)
    assert onnx_runtime.cached_graph("e" * 32, RES) is not None
    assert not dead.exists()

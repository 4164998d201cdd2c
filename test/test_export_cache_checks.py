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

"""A cached export made before read_checkpoint's latest refusal is not trusted.

An older canet_ros cached the export of a diverged (NaN) checkpoint; after the upgrade
that brought the NaN refusal, every start on the file took the torch-free cached path and
labelled every pixel class 0 with status 0 (node, segment-bag), while evaluate refused it.
"""
import json
import shutil

import pytest
import torch

from canet_ros.checkpoint import LOAD_CHECKS, build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.inference import EngineError, SegmentationEngine, onnx_runtime
from canet_ros.models import build_canet

RES = (96, 64)


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    """good.pt, and diverged.pt: the same weights with one classifier value NaN."""
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    meta = build_metadata("mobilenetv2", CAMVID, input_size=RES)
    good = save_checkpoint(tmp_path / "good.pt", model, meta)
    with torch.no_grad():
        model.classifier.weight.view(-1)[0] = float("nan")
    blob = torch.load(good, weights_only=True)
    blob["state_dict"]["classifier.weight"] = model.classifier.weight.detach().clone()
    torch.save(blob, tmp_path / "diverged.pt")
    return good, tmp_path / "diverged.pt"


def _as_an_older_version_cached(source_digest: str, digest: str, checks) -> None:
    """File ``source_digest``'s cache entry under ``digest``, its record of checks as given."""
    folder = onnx_runtime.cache_dir() / "onnx"
    for graph in folder.glob(f"{source_digest}_*.onnx"):
        shutil.copyfile(graph, graph.with_name(graph.name.replace(source_digest, digest)))
    metadata = json.loads((folder / f"{source_digest}.json").read_text())
    if checks is None:
        metadata.pop("load_checks", None)
    else:
        metadata["load_checks"] = checks
    (folder / f"{digest}.json").write_text(json.dumps(metadata))


def test_an_entry_stored_now_records_the_checks_and_is_used(checkpoints):
    good, _ = checkpoints
    SegmentationEngine(good, device="cpu", warmup=False)
    digest = onnx_runtime.file_digest(good)
    stored = json.loads((onnx_runtime.cache_dir() / "onnx" / f"{digest}.json").read_text())
    assert stored["load_checks"] == LOAD_CHECKS
    hit = onnx_runtime.cached_graph(digest, RES)
    assert hit is not None and "load_checks" not in hit.metadata  # the checkpoint's own keys


@pytest.mark.parametrize("checks", [None, LOAD_CHECKS - 1])
def test_an_older_versions_entry_of_a_diverged_file_is_refused_again(checkpoints, checks):
    good, diverged = checkpoints
    with pytest.raises(EngineError, match="NaN or infinite"):  # with no cache entry: refused
        SegmentationEngine(diverged, device="cpu", warmup=False)
    SegmentationEngine(good, device="cpu", warmup=False)  # a graph to file under its hash
    _as_an_older_version_cached(onnx_runtime.file_digest(good),
                                onnx_runtime.file_digest(diverged), checks)
    assert onnx_runtime.cached_graph(onnx_runtime.file_digest(diverged), RES) is None
    with pytest.raises(EngineError, match="NaN or infinite"):
        SegmentationEngine(diverged, device="cpu", warmup=False)

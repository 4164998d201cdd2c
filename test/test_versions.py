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

"""ONNX Runtime installed under another distribution name (onnxruntime-gpu, ...).

Looked up as the distribution "onnxruntime", its version was missing: int8 setup failed
with "No package metadata was found for onnxruntime", precision auto fell back to torch
fp32, and `canet info --system` said onnxruntime was not installed while using it.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from canet_ros.versions import module_version

REAL = metadata.version


def as_onnxruntime_gpu(monkeypatch) -> None:
    """Make the installed onnxruntime look as the onnxruntime-gpu wheel registers it."""
    def version(name: str) -> str:
        if name == "onnxruntime":
            raise metadata.PackageNotFoundError(name)
        return "9.8.7" if name == "onnxruntime-gpu" else REAL(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(metadata, "packages_distributions",
                        lambda: {"onnxruntime": ["onnxruntime-gpu"]})


def test_version_of_a_module_installed_under_another_name(monkeypatch):
    as_onnxruntime_gpu(monkeypatch)
    assert module_version("onnxruntime") == "9.8.7"
    assert module_version("no_such_module_here") is None


def test_int8_cache_key_and_info_see_onnxruntime_gpu(monkeypatch, tmp_path):
    from canet_ros.cli.info_system import _version
    from canet_ros.inference import quantize

    class Source:
        def digest(self) -> str:
            return "calibration"

    fp32 = Path(tmp_path / "model.onnx")
    fp32.write_bytes(b"graph")
    as_onnxruntime_gpu(monkeypatch)
    path = quantize.int8_path(fp32, Source())  # raised PackageNotFoundError
    assert path.parent == tmp_path and path.name.startswith("model_int8_")
    assert _version("onnxruntime") == "9.8.7"

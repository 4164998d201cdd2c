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

"""Installed versions of packages, found without importing them (start-up time)."""
from __future__ import annotations

from importlib import metadata
from typing import Optional

__all__ = ["module_version"]


def module_version(module: str) -> Optional[str]:
    """Return the version of the installed distribution that provides import ``module``.

    None if none does. The distribution's name can differ from the module's: ONNX Runtime
    installs as onnxruntime, onnxruntime-gpu, onnxruntime-openvino or onnxruntime-directml,
    all imported as ``onnxruntime``.
    """
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        pass
    for dist in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None

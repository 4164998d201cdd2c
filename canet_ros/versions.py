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

"""Installed versions of packages, found without importing them (start-up time).

And :func:`import_optional`, which does import one: an optional extra that is installed
but broken must be told apart from one that is absent.
"""
from __future__ import annotations

from importlib import metadata
from typing import Any, Optional, Tuple

__all__ = ["import_optional", "module_version"]


def import_optional(module: str, label: str) -> Tuple[Any, Optional[str]]:
    """Import the optional ``module``; return it and, when it cannot be used, why.

    (module, None) when it imports, (None, None) when it is not installed, (None, why) when
    installed but failing (a missing library, a RuntimeError raised at import).
    """
    try:
        return __import__(module), None  # as an import statement would, hooks included
    except ImportError as exc:
        if exc.name == module:
            return None, None
        return None, f"{label} is installed but does not import ({exc})"
    except Exception as exc:  # noqa: BLE001 -- an optional extra must not stop its caller
        return None, f"{label} does not load ({type(exc).__name__}: {exc})"


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

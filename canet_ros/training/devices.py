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

"""The torch device a training process runs on."""
from __future__ import annotations

import torch

from . import distributed as D


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """Return ``spec``'s device; "auto" is CUDA where there is one, each torchrun rank its own."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and D.launched_by_torchrun():
        spec = f"cuda:{local_rank}"
    return torch.device(spec)

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

"""Mixed-precision helpers that work on every torch setup.py admits (2.1 and later)."""
from __future__ import annotations

import torch


def grad_scaler(enabled: bool) -> torch.amp.GradScaler:
    """Return a CUDA gradient scaler (a no-op when not ``enabled``).

    ``torch.amp.GradScaler`` arrived in torch 2.3; the Jetson wheels of JetPack 6 are 2.1-2.4,
    so older torch gets ``torch.cuda.amp.GradScaler``, the same scaler with the same state.
    """
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)

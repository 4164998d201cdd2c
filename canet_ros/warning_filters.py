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

"""Silencing warnings for a block, safely when threads do it at once.

``warnings.catch_warnings`` swaps the process-wide filter list: two blocks overlapping in
threads (engines or nodes built in parallel, a checkpoint loading while another thread
exports) restore each other's lists and can leave an "ignore" in force for good, muting
the host program's warnings. Every such block in this package runs under one lock.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
from typing import Iterator

__all__ = ["PROCESS_LOCK", "quiet_warnings"]

# Re-entrant: an ONNX export (which holds it for torch's process-wide exporter state)
# may load a checkpoint, which silences torch.load's notes under it again.
PROCESS_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Ignore warnings inside the block, holding :data:`PROCESS_LOCK` (thread-safe)."""
    with PROCESS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield

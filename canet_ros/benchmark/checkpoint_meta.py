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

"""What the benchmarks need to know of a checkpoint before timing it: its backbone and size.

Read from the ONNX export cache's metadata where the checkpoint's export is cached (no
torch: a benchmark process that then runs torch-free must not count torch's ~480 MB in
``peak_host_mb``), else from the file itself, which also refuses a bad file in one line.
"""
from __future__ import annotations

from typing import Any

# The paper's Cityscapes input, timed where no checkpoint says otherwise (the engine's
# default for a checkpoint without input_size, too).
DEFAULT_SIZE = (1024, 512)


def checkpoint_facts(checkpoint: str, size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Return ``checkpoint``'s metadata (backbone, input_size, classes, ...).

    ``size``: the network size about to be timed, whose cached export is looked for (None:
    the checkpoint's own size). CheckpointError: a file that cannot be read as one.
    """
    from ..checkpoint import read_checkpoint, resolve_checkpoint
    from ..inference.onnx_runtime import cached_graph, file_digest

    path = resolve_checkpoint(checkpoint)
    try:
        entry = cached_graph(file_digest(path), size) if path.is_file() else None
    except OSError:
        entry = None  # read_checkpoint says what is wrong with it
    if entry is not None:
        return dict(entry.metadata)
    return {k: v for k, v in read_checkpoint(path).items() if k != "state_dict"}


def network_size(width: int | None, height: int | None,
                 facts: dict[str, Any] | None) -> tuple[int, int]:
    """Return the (width, height) to time: as given, else the checkpoint's input_size or 1024x512.

    evaluate, segment-bag, export and the node run a checkpoint at its input_size unless told
    otherwise; a benchmark of it should time that same size.
    """
    own = (facts or {}).get("input_size") or DEFAULT_SIZE
    return (int(width or own[0]), int(height or own[1]))

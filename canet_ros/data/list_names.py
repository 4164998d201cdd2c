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

"""Frame names in train.txt / val.txt, matched to the names a folder listing gives."""
from __future__ import annotations

from pathlib import Path

# Python spells file names in the filesystem encoding, which is not UTF-8 under LC_ALL=C
# with PYTHONUTF8=0 or a Latin-1 locale: there a frame 'é0' of the list was never one of
# the folder's, and every non-ASCII stem was reported 'not a frame in images/' though present.
from ..fs_names import on_disk  # noqa: F401 (API)
from .camvid import _IMAGE_EXTS


def list_stem(entry: str) -> str:
    """Return the stem a list entry names: 'frame_01' or 'frame_01.png' give 'frame_01'."""
    return Path(entry).stem if Path(entry).suffix.lower() in _IMAGE_EXTS else entry

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

"""Tell a DataLoader that ran out of shared memory (/dev/shm) from other torch errors.

DataLoader workers hand each batch over in ``/dev/shm``, which a container gets 64 MB of
by default: a batch that does not fit ends the run with torch's ``RuntimeError`` (raised
in the worker, re-raised in the main process). ``canet train`` and ``canet evaluate`` turn
it into one line with the way out. Torch-free, so the command line can import it.
"""
from __future__ import annotations

import re
import shutil
import sys
from typing import Optional

SHM_DIR = "/dev/shm"

# torch's messages: the allocation in the worker (fallocate: "unable to allocate shared
# memory(shm) ...", older "unable to write to file </torch_...>: No space left on device"),
# and a worker killed by SIGBUS when the file was mapped but its pages could not be had.
_PATTERNS = (
    re.compile(r"unable to allocate shared memory", re.IGNORECASE),
    re.compile(r"unable to write to file </torch_[^>]*>: No space left on device"),
    re.compile(r"out of shared memory|insufficient shared memory", re.IGNORECASE),
)


def shm_exhausted(exc: BaseException) -> bool:
    """Say whether ``exc`` (or an exception it was raised from) is /dev/shm running out."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if any(p.search(text) for p in _PATTERNS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _shm_size() -> str:
    try:
        total = shutil.disk_usage(SHM_DIR).total
    except OSError:  # no /dev/shm to measure (another OS): the advice stands without it
        return ""
    return f", {total / 2 ** 20:.0f} MB here"


def shm_message(exc: BaseException) -> Optional[str]:
    """Return the one-line explanation for a /dev/shm error, None for any other error."""
    if not shm_exhausted(exc):
        return None
    return (f"shared memory ({SHM_DIR}{_shm_size()}) ran out while the DataLoader workers "
            f"handed batches over; run with --workers 0, or give {SHM_DIR} more room "
            f"(a container: docker run --shm-size=1g)")


def report_shm_or_raise(exc: RuntimeError, prog: str) -> int:
    """Print ``prog``'s one line for a /dev/shm error and return 1; raise any other error.

    Called from an ``except RuntimeError`` block: any other error keeps its traceback.
    """
    message = shm_message(exc)
    if message is None:
        raise exc
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 1

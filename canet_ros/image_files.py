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

"""Read and write image files without handing OpenCV a path.

``cv2.imread``/``cv2.imwrite`` take the path as a ``str`` and encode it as UTF-8. Linux
allows any bytes in a file name, and Python holds a byte that is not UTF-8 as a lone
surrogate (``os.fsdecode`` turns byte 0xFF into U+DCFF); OpenCV 5.1 crashes the whole
process on such a string (SIGSEGV, no message, everything unwritten lost). Python opens the
file here, with the name's original bytes, and OpenCV only sees the bytes in memory.

The results match ``cv2.imread``/``cv2.imwrite`` for every readable path: ``cv2.imdecode``
applies a JPEG's EXIF orientation as ``cv2.imread`` does, and ``cv2.imencode`` produces the
same bytes ``cv2.imwrite`` puts in the file (test/test_image_files.py compares them).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np

__all__ = ["read_image", "save_image", "write_image"]

PathLike = Union[str, "os.PathLike[str]"]


def read_image(path: PathLike, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """Decode the image file at ``path`` as ``cv2.imread(path, flags)`` would.

    None where ``cv2.imread`` gives None: the file is missing, unreadable (a folder, no
    permission), empty, or not an image OpenCV can decode.
    """
    try:
        data = np.fromfile(os.fspath(path), np.uint8)
    except OSError:  # missing, a folder, no permission: cv2.imread says None, so do we
        return None
    if data.size == 0:  # cv2.imdecode raises on an empty buffer; cv2.imread says None
        return None
    return cv2.imdecode(data, flags)


def write_image(path: PathLike, image: np.ndarray, params: Sequence[int] = ()) -> bool:
    """Encode ``image`` by the suffix of ``path`` and write it, as ``cv2.imwrite`` would.

    False where ``cv2.imwrite`` gives False: the folder is missing or not writable, the path
    is a folder, the disk is full. An unknown suffix or an image the format cannot hold
    raises ``cv2.error``, as ``cv2.imwrite`` does.
    """
    try:
        save_image(path, image, params)
    except OSError:
        return False
    return True


def save_image(path: PathLike, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """``write_image``, raising where it gives False, so that the caller can say why.

    The ``OSError`` carries the errno and the path (a full disk is ``ENOSPC``, not just
    "cannot write"); a file cut short by it is left for the caller to remove.
    """
    ok, encoded = cv2.imencode(Path(path).suffix, image, list(params))
    if not ok:
        raise OSError(f"{os.fspath(path)}: OpenCV cannot encode this image")
    name = os.fspath(path)
    try:  # Python's file object, not ndarray.tofile, whose errors lose the errno
        with open(name, "wb") as out:
            out.write(memoryview(encoded))
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, name) from None  # a write error has no name

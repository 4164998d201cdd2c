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

"""Error types for problems with what the user gave (a file, an argument, a dataset).

This module imports nothing heavy, so the command line can name these types without
loading torch. ``canet`` reports any ``CanetError`` as one line and exit status 1.
"""
from __future__ import annotations

import errno
import reprlib
from typing import Any, Sequence

__all__ = ["BackboneWeightsError", "CanetError", "DatasetError", "ImageCodecError", "brief",
           "brief_items", "out_of_memory"]

BRIEF_WIDTH = 80  # characters of a quoted value in a message

# A few items of a few levels: a YAML alias bomb of 400 bytes expands to millions of
# items, and its full repr (tens of MB) was the whole error message.
_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


def brief(value: Any, width: int = BRIEF_WIDTH) -> str:
    """``repr(value)`` on one line of at most ``width`` characters, whatever its size.

    Only the part shown is looked at, so a value that is huge once expanded costs little.
    """
    try:
        text = _REPR.repr(value)
        if "..." not in text:  # nothing left out: the plain repr, in the value's own key order
            text = repr(value)
    except Exception:  # noqa: BLE001 -- a failing repr must not hide the problem itself
        text = f"<{type(value).__name__}>"
    text = " ".join(text.splitlines())
    return text if len(text) <= width else text[:width - 3] + "..."


def brief_items(values: Sequence[Any], limit: int = 5) -> str:
    """Quote the first ``limit`` of ``values`` with ``brief``, then say how many there are."""
    shown = ", ".join(brief(v, BRIEF_WIDTH // 2) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


# What an allocation that failed says where Python raises no MemoryError: the dynamic loader
# under a ulimit -v (ImportError/OSError of ``import torch``), torch's and the runtimes'
# allocators (RuntimeError; ONNX Runtime's and OpenCV's own exception classes), a new
# thread's stack (RuntimeError), ENOMEM (OSError).
_OOM_TEXTS = ("failed to map segment", "cannot allocate memory", "can't allocate memory",
              "defaultcpuallocator", "can't start new thread", "out of memory", "bad_alloc",
              "failed to allocate memory", "insufficient memory")
_OOM_TYPES = (ImportError, OSError, RuntimeError)
# Libraries whose errors derive from Exception alone (onnxruntime's Fail, cv2.error).
_OOM_MODULES = ("onnxruntime", "cv2")
_MEMORY_LIMITS = "ulimit -v; systemd MemoryMax= or LimitAS="
_OOM_WHAT_WIDTH = 160  # characters of the failed allocation's own message


def _says_out_of_memory(exc: BaseException) -> bool:
    """Return whether ``exc``'s own words (not a file name it carries) say memory ran out."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    module = type(exc).__module__.split(".")[0]
    if not (isinstance(exc, _OOM_TYPES) or module in _OOM_MODULES):
        return False
    # An OSError's str() holds its file name: "runs/out of memory/last.pt" says nothing.
    words = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    words = " ".join(words.split()).lower()
    if "failed to map segment" in words:
        # The loader says the same of a library on a noexec mount: memory only under a limit.
        return _address_space_limited()
    return any(t in words for t in _OOM_TEXTS)


def _address_space_limited() -> bool:
    try:
        import resource
    except ImportError:  # not a Unix: no ulimit -v to blame
        return False
    return resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def out_of_memory(exc: BaseException, lower: Sequence[str] = ()) -> str | None:
    """One line for an ``exc`` that means memory ran out, else None (any other error).

    The line says that memory ran out, what failed (the error's own first line, shortened)
    and what to do: raise the process's memory limit, or lower what ``lower`` names (the
    caller's knobs: ``("--resolution", "--batch-size")`` for a command, parameter names for
    the node). A traceback said none of that: ``import torch`` under a ``ulimit -v`` fails
    as "ImportError: libtorch_cpu.so: failed to map segment from shared object".
    """
    if isinstance(exc, CanetError):  # its message already says what is wrong and where
        return None
    if not (isinstance(exc, MemoryError) or _says_out_of_memory(exc)):
        return None
    text = " ".join(str(exc).split())
    start = text.find("DefaultCPUAllocator")  # torch: after "[enforce fail at alloc_cpu.cpp]"
    text = text[start:] if start > 0 else text
    if len(text) > _OOM_WHAT_WIDTH:
        text = text[:_OOM_WHAT_WIDTH - 3] + "..."
    name = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__
    what = f"{name}: {text}" if text else name
    low = text.lower()
    # Loading a library (``import torch``) takes the same memory at any input size.
    knobs = f" or lower {' or '.join(lower)}" if lower and "map segment" not in low else ""
    if name == "OutOfMemoryError" or "cuda out of memory" in low or "cuda error: out of" in low:
        return (f"the GPU ran out of memory ({what}); free GPU memory (other processes "
                f"using it) or run on the CPU{knobs}")
    threads = (" or the limit on threads (ulimit -u; systemd TasksMax=)"
               if "thread" in low else "")
    return (f"out of memory ({what}); raise the process's memory limit ({_MEMORY_LIMITS})"
            f"{threads}{knobs}")


class CanetError(Exception):
    """A problem with the user's input; the message names the file or argument and the problem."""


class DatasetError(CanetError, RuntimeError):
    """A dataset that cannot be read; the message names the folder or file."""


class BackboneWeightsError(CanetError, RuntimeError):
    """ImageNet backbone weights were asked for but cannot be had; the message says why."""


class ImageCodecError(ValueError):
    """Raised for every malformed or unsupported image message or array (canet_ros.image_codec)."""


# install_requires (setup.py) by import name: pip's name for each. A missing one is an
# install to fix, not a bug: one line naming it instead of a traceback.
REQUIRED_PACKAGES = {"numpy": "numpy", "cv2": "opencv-python-headless", "yaml": "pyyaml",
                     "tqdm": "tqdm", "rosbags": "rosbags", "mcap": "mcap",
                     "matplotlib": "matplotlib", "PIL": "pillow"}
# Deliberately not in setup.py (robots carry their own builds): README.md says how.
TORCH_PACKAGES = ("torch", "torchvision")
INSTALLING_TORCH = ("README.md, 'Installing torch': on a desktop pip install torch torchvision "
                    "(or canet_ros[torch]), on a Jetson NVIDIA's wheels for its JetPack")


def missing_package(exc: BaseException) -> str | None:
    """Say which package ``exc`` found not installed and how to install it, else None.

    Only the absence of torch, torchvision or a package of setup.py's install_requires
    counts; any other ImportError (a module of this package, a broken install) is a bug
    whose traceback a report needs.
    """
    name = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if name in TORCH_PACKAGES:
        return (f"{name} is not installed, and this needs torch and torchvision "
                f"({INSTALLING_TORCH})")
    if name in REQUIRED_PACKAGES:
        pip = REQUIRED_PACKAGES[name]
        module = f" (import {name})" if pip != name else ""
        return (f"the package {pip}{module}, which canet_ros needs, is not installed: "
                f"pip install {pip}")
    return None

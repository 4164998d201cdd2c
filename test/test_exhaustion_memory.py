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

"""Running out of memory is one ``canet CMD: error: ...`` line that says what to do.

The messages are the ones seen under ``ulimit -v``: ``import torch`` failing to map its
libraries, numpy's and torch's allocators, a thread that cannot get its stack.
"""
import argparse
import errno
import subprocess
import sys

import numpy as np
import pytest

from canet_ros import errors
from canet_ros.cli import main, run_command
from canet_ros.errors import CanetError, DatasetError, out_of_memory

TORCH_MAP = "libtorch_cpu.so: failed to map segment from shared object"
TORCH_ALLOC = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
               "allocate memory: you tried to allocate 4294967296 bytes. Error code 12 "
               "(Cannot allocate memory)")


def _numpy_memory_error() -> MemoryError:
    try:
        np.empty(1 << 62, np.uint8)  # more than any address space: numpy's own MemoryError
    except MemoryError as exc:
        return exc
    pytest.skip("numpy allocated 4 EiB")


def _raises(exc):
    def func(_args):
        raise exc
    return func


@pytest.fixture
def memory_limit(monkeypatch):
    """Run as under ``ulimit -v``: the only case where a library fails to map for memory."""
    monkeypatch.setattr(errors, "_address_space_limited", lambda: True)


def test_loading_torch_under_a_limit_names_the_library_and_the_limit(memory_limit):
    line = out_of_memory(ImportError(TORCH_MAP), ["--resolution"])
    assert line is not None and line.startswith("out of memory (ImportError: libtorch_cpu.so")
    assert "ulimit -v" in line and "MemoryMax" in line and "LimitAS" in line
    # A library takes the same memory whatever the input size: no knob to lower.
    assert "--resolution" not in line


def test_torch_allocator_names_the_size_and_the_knobs():
    line = out_of_memory(RuntimeError(TORCH_ALLOC), ["--resolution", "--batch-size"])
    assert line is not None and "4294967296 bytes" in line and "enforce fail" not in line
    assert "ulimit -v" in line and line.endswith("lower --resolution or --batch-size")


def test_numpy_memory_error_and_enomem_are_recognised():
    assert out_of_memory(_numpy_memory_error()).startswith("out of memory (MemoryError: ")
    assert out_of_memory(MemoryError()).startswith("out of memory (MemoryError)")
    enomem = OSError(errno.ENOMEM, "Cannot allocate memory")
    assert "Cannot allocate memory" in out_of_memory(enomem)


def test_a_thread_without_a_stack_names_both_limits():
    line = out_of_memory(RuntimeError("can't start new thread"))
    assert "ulimit -v" in line and "ulimit -u" in line


def test_gpu_memory_is_not_the_process_limit(memory_limit):
    exc = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB "
                       "total capacity)")
    line = out_of_memory(exc, ["--resolution"])
    assert line.startswith("the GPU ran out of memory") and "ulimit" not in line
    assert "--resolution" in line
    # A CUDA library that could not be mapped is the process's limit, not the GPU's.
    assert out_of_memory(ImportError("libtorch_cuda.so: failed to map segment from shared "
                                     "object")).startswith("out of memory (")


@pytest.mark.parametrize("exc", [RuntimeError("shape mismatch"), ImportError("No module named "
                                 "'onnx'"), OSError(errno.ENOENT, "No such file"),
                                 ValueError("can't allocate memory"),
                                 CanetError("out of memory.yaml: not found"),
                                 DatasetError("out of memory/val: folder not found")],
                         ids=["bug", "missing-module", "enoent", "value", "canet", "dataset"])
def test_other_errors_are_not_out_of_memory(exc):
    assert out_of_memory(exc) is None


def test_a_long_message_stays_short():
    line = out_of_memory(MemoryError("x" * 10000))
    assert line is not None and len(line) < 400


def test_run_command_prints_one_line_and_status_1(capsys):
    args = argparse.Namespace(resolution=None, batch_size=1)
    assert run_command(_raises(_numpy_memory_error()), args, "canet demo") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("canet demo: error: out of memory (")
    assert "--resolution or --batch-size" in err


def test_any_other_runtime_error_keeps_its_traceback():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_command(_raises(RuntimeError("shape mismatch")), None, "canet demo")


def test_segment_bag_says_out_of_memory_for_its_own_errors(capsys, monkeypatch, tmp_path):
    from canet_ros.cli import segment_bag

    monkeypatch.setattr(segment_bag, "_run", _raises(OSError(errno.ENOMEM,
                                                             "Cannot allocate memory")))
    assert main(["segment-bag", "sample", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("canet segment-bag: error: out of memory (")
    assert "--resolution" in err[-1]


@pytest.mark.parametrize("hard", ["same", "unlimited"])  # ulimit -v; ulimit -Sv (docker soft)
def test_import_torch_under_ulimit_v_is_one_line(hard):
    resource = pytest.importorskip("resource")
    if not hasattr(resource, "RLIMIT_AS"):
        pytest.skip("no address-space limit on this system")
    limit = 300 * 1024 * 1024  # Python and the parser fit; torch's libraries alone do not
    top = limit if hard == "same" else resource.RLIM_INFINITY

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, top))

    done = subprocess.run([sys.executable, "-m", "canet_ros.cli", "info", "--checkpoint",
                           "default"], capture_output=True, text=True, timeout=300,
                          preexec_fn=limited)
    assert "Traceback" not in done.stderr
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("canet info: error: out of memory (")
    assert "ulimit -v" in done.stderr


def test_a_library_on_a_noexec_mount_is_not_out_of_memory(monkeypatch):
    # The loader's words are the same as under ulimit -v; without an address-space limit
    # memory is not why (a venv or install space on a noexec /tmp, USB stick, volume).
    monkeypatch.setattr(errors, "_address_space_limited", lambda: False)
    assert out_of_memory(ImportError(TORCH_MAP)) is None
    assert out_of_memory(OSError(TORCH_MAP)) is None


def test_the_limit_is_read_from_the_process():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    assert errors._address_space_limited() == (soft != resource.RLIM_INFINITY)


@pytest.mark.parametrize("path", ["runs/out of memory/last.pt", "/data/bad_alloc_repro/x.png",
                                  "cannot allocate memory.yaml"])
def test_a_file_name_is_not_read_as_the_error(path):
    assert out_of_memory(FileNotFoundError(errno.ENOENT, "No such file or directory",
                                           path)) is None
    assert out_of_memory(PermissionError(errno.EACCES, "Permission denied", path)) is None


def _foreign_error(module, name, text):
    # The runtimes' own classes derive from Exception alone; made here by module and name.
    return type(name, (Exception,), {"__module__": module})(text)


@pytest.mark.parametrize("exc", [
    _foreign_error("onnxruntime.capi.onnxruntime_pybind11_state", "Fail",
                   "[ONNXRuntimeError] : 1 : FAIL : BFCArena::AllocateRawInternal Failed to "
                   "allocate memory for requested buffer of size 160000000000"),
    _foreign_error("cv2", "error", "OpenCV(4.10.0) alloc.cpp:73: error: (-4:Insufficient "
                   "memory) Failed to allocate 120000000000 bytes in function "
                   "'OutOfMemoryError'"),
])
def test_onnx_runtime_and_opencv_running_out_are_recognised(exc):
    line = out_of_memory(exc, ["--resolution"])
    assert line is not None and line.startswith("out of memory (")
    assert line.endswith("lower --resolution")


def test_other_errors_of_those_libraries_are_not_out_of_memory():
    fail = _foreign_error("onnxruntime.capi.onnxruntime_pybind11_state", "Fail",
                          "[ONNXRuntimeError] : 1 : FAIL : Load model from x.onnx failed")
    assert out_of_memory(fail) is None
    assert out_of_memory(_foreign_error("cv2", "error", "(-215:Assertion failed) !ssize.empty()"
                                        " in function 'resize'")) is None

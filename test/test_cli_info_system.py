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

"""``canet info --system``: the machine's report, checked against the libraries themselves."""
import importlib.util
import json
import os
import platform
import subprocess
import sys

import cv2
import numpy as np
import pytest

from canet_ros.cli import main
from canet_ros.cli.info_system import report_lines, system_report
from canet_ros.inference import kernels


@pytest.fixture
def fresh_numba():
    """Let a test change how numba imports; what it found is forgotten before and after."""
    kernels._numba.cache_clear()
    yield
    kernels._numba.cache_clear()


def test_the_report_names_what_this_machine_has(capsys):
    import torch

    assert main(["info", "--system", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["python"] == platform.python_version()
    assert report["packages"]["numpy"] == np.__version__
    assert report["packages"]["opencv"] == cv2.__version__
    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["cuda_available"] == torch.cuda.is_available()
    assert report["torch"]["device_auto"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert report["cpu"]["threads"] == len(os.sched_getaffinity(0))
    for name in ("av", "openvino", "onnxruntime"):  # optional: there or not, as pip says
        assert (report["packages"][name] is None) == (importlib.util.find_spec(name) is None)
    assert report["cpu"]["native_precisions"][0] == "fp32"
    assert report["cpu"]["auto_order"][-1] == "fp32"


def test_a_cpu_without_bf16_or_int8_runs_fp32_only():
    cpu = system_report(flags=frozenset({"avx2", "avx512f"}))["cpu"]
    assert cpu["native_precisions"] == ["fp32"] and cpu["auto_order"] == ["fp32"]
    assert cpu["features"] == ["avx2", "avx512f"]


def test_without_openvino_auto_keeps_fp32_and_says_which_precisions_lack_a_runtime(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    report = system_report(flags=frozenset({"avx512_bf16", "avx512_vnni"}))
    cpu = report["cpu"]
    assert cpu["native_precisions"] == ["fp32", "bf16", "int8"]
    # auto takes reduced precisions only on OpenVINO (docs/performance.md); bf16 has no
    # other runtime, int8 runs on ONNX Runtime when asked for by name.
    assert cpu["auto_order"] == ["fp32"]
    assert cpu["runtime_for"]["bf16"] is None
    ort = importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx")
    assert cpu["runtime_for"]["int8"] == ("onnxruntime" if ort else None)
    assert cpu["runtime_for"]["fp32"] == ("onnxruntime" if ort else "torch")
    text = "\n".join(report_lines(report))
    assert "  bf16: native, but no runtime installed for it" in text
    assert "precision auto on the CPU tries fp32\n" in text


def test_a_numba_that_does_not_import_is_reported_with_its_error(numba_import_fails):
    assert system_report()["numba"] == {
        "loops": False,
        "status": "numba is installed but does not import (No module named 'pkg_resources')"}


def test_a_missing_numba_is_reported_as_missing(monkeypatch, fresh_numba):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    report = system_report()
    assert report["numba"] == {"loops": False,
                               "status": "numba is not installed (pip install canet_ros[numba])"}
    assert "CPU frame-path loops: OpenCV/numpy (numba is not installed" in \
        "\n".join(report_lines(report))


def test_numba_switched_off_by_the_environment(monkeypatch, fresh_numba):
    numba = pytest.importorskip("numba", reason="numba is the optional extra canet_ros[numba]")
    monkeypatch.setenv(kernels.ENV, "0")
    assert system_report()["numba"] == {
        "loops": False, "status": f"numba {numba.__version__} is switched off by "
                                  "CANET_ROS_NUMBA=0"}
    monkeypatch.delenv(kernels.ENV)
    on = system_report()
    assert on["numba"] == {"loops": True, "status": f"numba {numba.__version__}"}
    assert f"CPU frame-path loops: numba {numba.__version__}, compiled" in report_lines(on)


def test_the_text_report_names_torch_and_the_device(capsys):
    import torch

    assert main(["info", "--system"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Python {platform.python_version()}, canet_ros ")
    assert f"torch {torch.__version__}: " in out
    if not torch.cuda.is_available():
        assert "device auto runs on the CPU" in out


def test_without_torch_the_report_says_so_and_still_describes_the_cpu():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
            "from canet_ros.cli import main; sys.exit(main(['info', '--system']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1] == "torch: not installed (README.md, 'Installing torch')"
    assert lines[2].startswith("CPU: ") and "  fp32: runs on " in proc.stdout

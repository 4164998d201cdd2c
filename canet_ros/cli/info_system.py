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

"""``canet info --system``: what this machine runs CANet with, before any model loads.

The node's ``ready:`` line says what one start chose; this says what every start can
choose here and why not the rest (a runtime not installed, a numba that does not
import, a CPU without bf16), so a slow robot can be explained without a bag or a model.
"""
from __future__ import annotations

import os
import platform
from typing import Any, Dict, List, Optional

from ..versions import module_version

# Distributions whose versions matter to a report, and what each one is for.
PACKAGES = {
    "canet_ros": "this package", "torch": "the model", "torchvision": "the backbones",
    "numpy": "arrays", "onnxruntime": "CPU runtime (pip install canet_ros[onnx])",
    "onnx": "ONNX export and int8 calibration", "openvino": "CPU runtime for bf16 and int8 "
    "(pip install canet_ros[openvino])", "numba": "compiled frame-path loops "
    "(pip install canet_ros[numba])", "rosbags": "reading bags", "mcap": "writing MCAP bags",
    "av": "segment-bag --video (pip install canet_ros[video])",
    "tensorboard": "canet train's tb/ scalars (pip install canet_ros[train])",
}


def _version(name: str) -> Optional[str]:
    return module_version(name)  # onnxruntime-gpu and the like count as onnxruntime


def _numba_state() -> Dict[str, Any]:
    from ..inference import kernels

    loops, what = kernels.loops_status()
    return {"loops": loops, "status": what}


def _torch_state() -> Dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"installed": False, "device_auto": None,
                "why": "not installed (README.md, 'Installing torch')"}
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if cuda else []
    return {"installed": True, "version": torch.__version__, "cuda_build": torch.version.cuda,
            "cuda_available": cuda, "cuda_devices": devices,
            "device_auto": "cuda:0" if cuda else "cpu"}


def _cpu_state(flags: Optional[frozenset] = None) -> Dict[str, Any]:
    from ..inference import cpu_features
    from ..inference.cpu_runners import (
        RUNS_ON,
        auto_candidates,
        export_needs,
        packages_missing,
        runtime_for,
    )
    from ..inference.onnx_runtime import onnxruntime_available
    from ..inference.openvino_runner import openvino_available
    from ..inference.results import cpu_name

    native = cpu_features.cpu_precisions(flags)
    # fp32 without ONNX Runtime or OpenVINO runs on torch itself.
    runtimes = {p: runtime_for(p) or ("torch" if p == "fp32" else None) for p in native}
    # What a precision without a runtime lacks, from a checkpoint not yet exported: "no
    # runtime" was wrong where only int8's quantizer (onnx, ONNX Runtime) was missing.
    needs = {p: packages_missing(p) for p, r in runtimes.items() if r is None}
    have = {"onnxruntime": onnxruntime_available(), "openvino": openvino_available()}
    bare = [p for p in needs if not any(have[name] for name in RUNS_ON[p])]
    auto = auto_candidates("auto", native)
    try:
        threads = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        threads = os.cpu_count() or 1
    return {"name": cpu_name(), "threads": threads,
            "features": cpu_features.relevant_features(flags), "native_precisions": list(native),
            "runtime_for": runtimes, "needs": needs, "no_runtime": bare, "auto_order": auto,
            "export_needs": export_needs()}


def system_report(flags: Optional[frozenset] = None) -> Dict[str, Any]:
    """Return the machine's report as one JSON-ready dict (``flags``: CPU flags, for tests)."""
    import cv2

    versions = {name: _version(name) for name in PACKAGES}
    versions["opencv"] = cv2.__version__  # apt's python3-opencv has no pip metadata
    return {"python": platform.python_version(), "packages": versions,
            "torch": _torch_state(), "cpu": _cpu_state(flags), "numba": _numba_state()}


def _runs_on(precision: str, cpu: Dict[str, Any]) -> str:
    runtime = cpu["runtime_for"][precision]
    if not runtime:
        needs = cpu.get("needs", {}).get(precision)
        if precision in cpu.get("no_runtime", [precision]) or not needs:
            return "native, but no runtime installed for it" + (
                f" (pip install {needs})" if needs else "")
        why = " (int8's graph is made by ONNX Runtime's quantizer, which uses onnx)" \
            if precision == "int8" else ""
        return f"native, but needs: pip install {needs}{why}"
    if runtime == "torch" or not cpu.get("export_needs"):
        return f"runs on {runtime}"
    # The runtimes read a cached export, but making one needs the onnx package.
    rest = "the others run on torch" if precision == "fp32" else "the others are refused"
    return (f"runs on {runtime} for models already in the export cache; exporting one "
            f"needs {cpu['export_needs']}, so {rest}")


def report_lines(report: Dict[str, Any]) -> List[str]:
    """Return the report as lines of text, one topic a line."""
    torch_, cpu, numba = report["torch"], report["cpu"], report["numba"]
    if not torch_["installed"]:
        gpu = torch_["why"]
    elif torch_["cuda_available"]:
        gpu = f"CUDA {torch_['cuda_build']}: {', '.join(torch_['cuda_devices'])}"
    else:
        gpu = (f"CUDA not available (CUDA build {torch_['cuda_build']}): device auto runs on "
               f"the CPU" if torch_["cuda_build"] else "a CPU-only build: device auto runs on "
               "the CPU")
    lines = [f"Python {report['python']}, canet_ros {report['packages']['canet_ros']}",
             f"torch {torch_['version']}: {gpu}" if torch_["installed"] else f"torch: {gpu}",
             f"CPU: {cpu['name']}, {cpu['threads']} threads for this process; features: "
             f"{', '.join(cpu['features']) or 'none that matter'}"]
    for precision in cpu["native_precisions"]:
        lines.append(f"  {precision}: {_runs_on(precision, cpu)}")
    lines.append(f"  precision auto on the CPU tries {' > '.join(cpu['auto_order'])}"
                 + (" (int8 once its calibrated graph is cached)"
                    if "int8" in cpu["auto_order"] else ""))
    lines.append("CPU frame-path loops: " + (f"{numba['status']}, compiled" if numba["loops"]
                                             else f"OpenCV/numpy ({numba['status']})"))
    lines.append("packages:")
    for name, version in report["packages"].items():
        what = PACKAGES.get(name, "images")
        lines.append(f"  {name:<12} {version or 'not installed':<14} {what}")
    return lines

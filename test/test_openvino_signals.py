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


"""OpenVINO sessions leave the process able to handle signals and fork.

Each ``ov.Core`` loads a CPU plugin that swaps in a signal stack of its own and, when
destroyed, puts back the one it replaced; several Cores destroyed out of order left the
thread's signal stack unmapped, and the next Python signal handler (Ctrl-C, the SIGCHLD
of a DataLoader worker) killed the process with SIGSEGV. The runners now share one Core.
Each case runs in a child process, so a crash is an exit status, not a dead pytest.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from canet_ros.inference import cpu_features, cpu_runners

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("onnx")
pytest.importorskip("openvino", reason="openvino is not installed (pip install .[openvino])")

# Several sessions made and dropped out of order, then the signals a process meets.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import cv2
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from canet_ros.inference.cpu_runners import make_cpu_runner

    w = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(2, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["logits"], pads=[1, 1, 1, 1])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 8, 8])], [w])
    data = helper.make_model(  # IR 8: any onnxruntime that reads opset 17 reads it
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    def to_input(frame):  # int8 calibrates on the sample bag's frames
        small = cv2.resize(frame, (8, 8), interpolation=cv2.INTER_AREA)
        return (small.astype(np.float32).transpose(2, 0, 1)[None] - 128) / 64

    precision, runtime = sys.argv[1:3]
    runners = [make_cpu_runner(data, (8, 8), 2, precision, runtime, to_input)
               for _ in range(3)]
    x = np.ones((1, 3, 8, 8), np.float32)
    assert [r.runtime for r in runners] == ["openvino"] * 3
    assert all(r.forward_numpy(x).shape == (1, 2, 8, 8) for r in runners)
    for index in (0, 1, 0):  # dropped first, third, second: not in reverse order
        del runners[index]

    seen = []
    signal.signal(signal.SIGUSR1, lambda *_: seen.append("usr1"))
    os.kill(os.getpid(), signal.SIGUSR1)
    try:  # Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:
        seen.append("int")
    # A forked worker and its SIGCHLD, handled in Python as torch's DataLoader does.
    signal.signal(signal.SIGCHLD, lambda *_: seen.append("chld"))
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    seen.append(os.waitstatus_to_exitcode(status))
    print(seen, flush=True)
""")


def test_openvino_runners_share_one_core():
    from canet_ros.inference import openvino_runner

    assert openvino_runner.core() is openvino_runner.core()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_signals_and_forks_after_openvino_sessions(precision):
    if precision != "fp32" and (precision not in cpu_features.cpu_precisions()
                                or cpu_runners.runtime_for(precision) != "openvino"):
        pytest.skip(f"this CPU or install does not run {precision} on OpenVINO")
    # fp32 is asked of OpenVINO by name (it would go to ONNX Runtime): any CPU runs this.
    child = subprocess.run([sys.executable, "-c", CHILD, precision, "openvino"],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert child.returncode == 0, f"exit status {child.returncode}: {child.stderr[-2000:]}"
    assert child.stdout.strip() == "['usr1', 'int', 'chld', 7]", child.stdout

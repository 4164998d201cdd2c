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

"""The node's process on real ROS: bad start-up values, and signals while it starts.

Each case runs the ``segmentation_node`` console script with ``--ros-args`` as a user
would. A bad value must end the process with exit status 1 and one FATAL line naming
the problem, never a traceback; it is reported before torch is even imported.
Ctrl-C (or SIGTERM) while the node is still importing or loading must end it quietly.
"""
import signal
import sys
import time

import pytest
from ros_helpers import REPO
from ros_processes import RosProcess, node_env, node_executable, start_node

pytestmark = pytest.mark.usefixtures("ros")  # skips where rclpy is missing

CONFIG = REPO / "config"
BAD_STARTS = {
    "resolution": (["-p", "resolution:=abc"], "WIDTHxHEIGHT"),
    "backbone": (["-p", "backbone:=resnet18"], "bundled mobilenetv2 model"),
    "alpha": (["-p", "overlay_alpha:=2.0"], "overlay_alpha"),
    "transport": (["-p", "input_transport:=theora"], "input_transport"),
    "fp16 on cpu": (["-p", "precision:=fp16", "-p", "device:=cpu"], "fp16"),
    "no checkpoint file": (["-p", "checkpoint:=/nonexistent/model.pt"], "no such file"),
    "no params file": (["--params-file", "/nonexistent/params.yaml"], "params file"),
    "empty -p value": (["-p", "checkpoint:="], "parameter override rule"),
    "resnet yaml": (["--params-file", str(CONFIG / "canet_resnet18.yaml")],
                    "checkpoint is empty"),
}


def test_bad_start_up_values_end_with_one_fatal_line():
    # All at once: none of them gets as far as loading a model.
    runs = {case: start_node(*args, name=case) for case, (args, _) in BAD_STARTS.items()}
    failures = []
    for case, run in runs.items():
        code, words = run.wait(120), BAD_STARTS[case][1]
        run.stop()
        fatal = [line for _, line in run.lines if "[FATAL]" in line]
        if code != 1 or len(fatal) != 1 or words not in fatal[0] or "Traceback" in run.output:
            failures.append(f"{case}: exit {code}\n{run.output}")
    assert not failures, "\n\n".join(failures)


def test_a_bad_value_is_reported_before_torch_is_imported():
    code = ("import sys\nfrom canet_ros.ros.node import main\n"
            "status = main(['segmentation_node', '--ros-args', '-p', 'resolution:=abc'])\n"
            "print('torch imported:', 'torch' in sys.modules)\nsys.exit(status)\n")
    run = RosProcess([sys.executable, "-c", code], node_env(), "no torch")
    assert run.wait(120) == 1, run.output
    assert "torch imported: False" in run.output and "[FATAL]" in run.output


def test_device_cuda_without_cuda_is_a_start_up_error():
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here, so device:=cuda is not an error")
    run = start_node("-p", "device:=cuda")
    code = run.wait(300)
    run.stop()
    assert code == 1, run.output
    fatal, = [line for _, line in run.lines if "[FATAL]" in line]
    assert "CUDA" in fatal and "Traceback" not in run.output


@pytest.mark.parametrize("signum, delay", [
    (signal.SIGINT, 0.3),   # importing rclpy
    (signal.SIGINT, 1.5),   # importing torch, for the engine
    (signal.SIGINT, 4.0),   # building the engine (or, on a fast machine, just running)
    (signal.SIGTERM, 1.5),
])
def test_signal_while_starting_ends_quietly(signum, delay):
    run = start_node("--params-file", str(CONFIG / "canet_mobilenetv2.yaml"),
                     "-p", "device:=cpu", name="starting")
    try:
        run.wait_line("never printed", timeout=delay)
        run.send(signum)
        code = run.wait(60)
    finally:
        run.stop()
    assert code == 0, run.output
    assert not run.problems(), run.output


def test_a_signal_inside_rclpys_import_is_a_quiet_stop(monkeypatch, capsys):
    # pybind11 turns the KeyboardInterrupt raised in its module init into
    # ImportError("initialization failed"): that is the signal, not a missing ROS.
    from canet_ros.ros import node

    signals = node.StopSignals()
    signals.received.append("SIGINT")
    monkeypatch.setitem(sys.modules, "rclpy", None)  # importing it raises ImportError
    assert node._run([], signals) == 0
    assert capsys.readouterr().err == ""
    assert node._run([], node.StopSignals()) == 1  # no signal: ROS is missing, said so
    assert "source your ROS 2 setup" in capsys.readouterr().err


# The node's start-up replaced by loading that a signal cannot interrupt the usual way,
# run as the console script runs main(); it prints how long it loaded if not stopped.
_STUCK_LOADING = """
import signal, sys, threading, time
import canet_ros.ros.segmentation as segmentation
from canet_ros.ros.node import main

def loading(*args, **kwargs):
    started = time.monotonic()
    if sys.argv[1] == "blocked":  # main thread in a wait the signal cannot reach
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    never = threading.Event()
    while time.monotonic() - started < 40:
        try:  # from the line the test waits for: a KeyboardInterrupt is always caught
            print("loading", flush=True)
            never.wait(40)
        except BaseException:  # a library's bare except: the KeyboardInterrupt is gone
            pass
    print(f"loaded after {time.monotonic() - started:.0f} s", flush=True)
    raise SystemExit(3)

segmentation.SegmentationNode = loading
main()
"""


@pytest.mark.parametrize("case", ["swallowed", "blocked"])
def test_a_signal_stops_a_start_up_that_would_not_let_it(case):
    # swallowed: a loader catches KeyboardInterrupt and goes on; blocked: the main thread
    # never runs the Python handler while loading (SIGINT reaches another thread).
    run = RosProcess([sys.executable, "-c", _STUCK_LOADING, case], node_env(), case)
    try:
        assert run.wait_line("loading", timeout=120) is not None, run.output
        time.sleep(1.0)  # into its wait: a signal before it reaches the Python handler
        run.send(signal.SIGINT)
        code = run.wait(20)
    finally:
        run.stop()
    assert code == 0, run.output
    assert "loaded after" not in run.output and not run.problems(), run.output


# Loading whose KeyboardInterrupt comes out as another error, as torch's ONNX exporter
# once turned a SIGTERM into "RuntimeError: generator raised StopIteration".
_CONVERTING_LOADER = """
import threading
import canet_ros.ros.segmentation as segmentation
from canet_ros.ros.node import main

def exporting(*args, **kwargs):
    try:
        print("loading", flush=True)
        threading.Event().wait(40)
    except KeyboardInterrupt:
        raise RuntimeError("generator raised StopIteration") from None
    raise SystemExit(3)

segmentation.default_engine_factory = exporting
main()
"""


def test_a_signal_turned_into_another_error_while_loading_is_still_a_stop():
    run = RosProcess([sys.executable, "-c", _CONVERTING_LOADER], node_env(), "converting")
    try:
        assert run.wait_line("loading", timeout=120) is not None, run.output
        time.sleep(0.5)
        run.send(signal.SIGTERM)
        code = run.wait(20)
    finally:
        run.stop()
    assert code == 0, run.output
    assert not run.problems(), run.output


def test_a_stop_signals_interrupt_that_python_drops_is_not_reported(monkeypatch):
    # The handler's KeyboardInterrupt can land in a __del__ (an import lock's weakref
    # callback did): Python's hook prints such an error as "Exception ignored ... Traceback".
    from canet_ros.ros import node

    class Dropping:
        def __del__(self):
            raise KeyboardInterrupt

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))
    host_hook = sys.unraisablehook
    signals = node.StopSignals()
    assert signals.install()
    try:
        Dropping()
        signals.received.append("SIGINT")
        Dropping()
    finally:
        signals.restore()
    assert reported == [KeyboardInterrupt]  # before a signal: not a stop, still reported
    assert sys.unraisablehook is host_hook


def test_a_stop_while_exporting_leaves_no_temp_file_and_leaves_the_graph(ros, tmp_path):
    # The first start exports the model into the (here empty) cache: a signal while it
    # writes must unwind, so the atomic write removes its temp file and the node is
    # destroyed (a process that just ended stays in other nodes' graph ~20 s, until DDS's
    # lease runs out).
    cache = tmp_path / "cache"
    env = dict(node_env(), CANET_ROS_CACHE=str(cache))
    run = RosProcess([node_executable(), "--ros-args", "--params-file",
                      str(CONFIG / "canet_mobilenetv2.yaml"), "-p", "device:=cpu",
                      "-r", "__node:=canet_stop_probe"], env, "exporting")
    observer = ros.create_node("canet_stop_observer")

    def listed():
        return ("canet_stop_probe", "/") in observer.get_node_names_and_namespaces()
    try:
        deadline, temp = time.monotonic() + 180, None
        while temp is None and run.proc.poll() is None and time.monotonic() < deadline:
            temp = next(cache.rglob("*.tmp"), None) if cache.is_dir() else None
        assert temp is not None and listed(), run.output  # writing, and in the graph
        run.send(signal.SIGINT)
        code = run.wait(30)
        exited = time.monotonic()
        while listed() and time.monotonic() - exited < 10:
            time.sleep(0.1)
        gone_after = time.monotonic() - exited
    finally:
        run.stop()
        observer.destroy_node()
    assert code == 0 and not run.problems(), run.output
    assert list(cache.rglob("*.tmp")) == []
    assert gone_after < 5, f"still in the ROS graph {gone_after:.1f} s after the node ended"

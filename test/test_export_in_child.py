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

"""A first start with ``export_in_child=True`` exports in a child process: no torch here.

Before, a start whose checkpoint had no cached export imported torch in-process to make
it, and the node ran at ~3x the memory of a cached start for its whole life; the start
was silent for the seconds the export and numba's first compile took. Each start here is
a fresh process (pytest has torch loaded) with its own empty ``CANET_ROS_CACHE``.
"""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from canet_ros.inference import SegmentationEngine, cpu_features, cpu_runners, onnx_runtime

ROOT = Path(__file__).resolve().parents[1]
EXPORTING = "first start with seeded.pt"
COMPILING = "compiling the CPU frame path's loops"
START = r"""
import json, logging, os, sys
import numpy as np
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("numba").setLevel(logging.WARNING)
checkpoint, precision, frame, out, child, warmup = sys.argv[1:7]
if child:
    sys.executable = child  # the interpreter the export's child process is started with
from canet_ros.inference import SegmentationEngine, export_child
if os.environ.get("TEST_CHILD_TIMEOUT_S"):
    export_child.CHILD_TIMEOUT_S = float(os.environ["TEST_CHILD_TIMEOUT_S"])
engine = SegmentationEngine(checkpoint, device="cpu", precision=precision,
                            export_in_child=True, warmup=warmup == "1")
np.save(out, engine.infer(np.load(frame)).labels)
print(json.dumps({"torch": "torch" in sys.modules, "precision": engine.precision}))
"""


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Return a small checkpoint file and the folder with a frame for it."""
    import torch

    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID
    from canet_ros.models import build_canet

    folder = tmp_path_factory.mktemp("export_in_child")
    torch.manual_seed(3)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():  # decisive logits: no near-ties
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
    path = save_checkpoint(folder / "seeded.pt", model,
                           build_metadata("mobilenetv2", CAMVID, input_size=(96, 64)))
    frame = np.random.default_rng(2).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    frame[10:50, 20:70] = (40, 150, 200)
    np.save(folder / "frame.npy", frame)
    return path, folder


def reference(path, folder, precision="fp32"):
    """Labels of an engine built in-process, torch exporting (its own cache)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CANET_ROS_CACHE", str(folder / f"reference_cache_{precision}"))
        engine = SegmentationEngine(path, device="cpu", precision=precision, warmup=False)
        return engine.infer(np.load(folder / "frame.npy")).labels


def start(path, folder, cache, *, precision="fp32", child="", warmup=False, env=None):
    """Build an engine with export_in_child in a fresh process: (report, labels, stderr)."""
    out = cache.parent / f"labels_{cache.name}.npy"
    proc = subprocess.run(
        [sys.executable, "-c", START, str(path), precision, str(folder / "frame.npy"),
         str(out), child, "1" if warmup else "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "CANET_ROS_CACHE": str(cache), **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out), proc.stderr


def said(stderr, words, level="INFO"):
    return [line for line in stderr.splitlines() if line.startswith(level) and words in line]


def cached(path, cache):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CANET_ROS_CACHE", str(cache))
        return onnx_runtime.cached_graph(onnx_runtime.file_digest(path), None) is not None


def test_a_first_start_exports_in_a_child_and_never_loads_torch(seeded, tmp_path):
    path, folder = seeded
    expected = reference(path, folder)
    cache = tmp_path / "cache"
    numba = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}  # its loops not compiled yet
    report, labels, stderr = start(path, folder, cache, warmup=True, env=numba)
    assert report["torch"] is False, stderr
    np.testing.assert_array_equal(labels, expected)
    assert cached(path, cache)
    assert len(said(stderr, EXPORTING)) == 1, stderr  # said once, by this process
    assert said(stderr, f"the export is kept in {cache / 'onnx'}", "DEBUG"), stderr
    assert said(stderr, "exported in a child process", "DEBUG"), stderr
    from canet_ros.inference import kernels

    if kernels.available():
        assert len(said(stderr, COMPILING)) == 1, stderr
    # The next start finds both caches: neither line.
    report, labels, stderr = start(path, folder, cache, warmup=True, env=numba)
    assert report["torch"] is False
    np.testing.assert_array_equal(labels, expected)
    assert not said(stderr, EXPORTING) and not said(stderr, COMPILING), stderr
    assert not said(stderr, "child process", "DEBUG"), stderr


def test_another_canet_ros_in_the_working_folder_is_not_what_the_child_runs(seeded, tmp_path):
    # A node started from a folder holding another canet_ros (a source tree, a stale copy).
    path, folder = seeded
    fake = tmp_path / "cwd" / "canet_ros"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise SystemExit(3)\n")
    script = tmp_path / "start.py"  # a script's folder, not the working one, leads its path
    script.write_text(START)
    out, cache = tmp_path / "labels.npy", tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, str(script), str(path), "fp32", str(folder / "frame.npy"), str(out),
         "", "0"], capture_output=True, text=True, cwd=fake.parent, timeout=600,
        env={**os.environ, "CANET_ROS_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["torch"] is False, proc.stderr
    np.testing.assert_array_equal(np.load(out), reference(path, folder))


def test_an_export_child_never_starts_a_child_of_its_own(seeded, tmp_path):
    # The child's environment says what it is: even an engine there asked for a child
    # (a bug, or a user's code run in it) exports in-process instead of starting another.
    path, folder = seeded
    report, labels, stderr = start(path, folder, tmp_path / "cache",
                                   env={"CANET_ROS_EXPORT_CHILD": "1"})
    assert report["torch"] is True, stderr
    np.testing.assert_array_equal(labels, reference(path, folder))
    assert not said(stderr, "child process", "DEBUG"), stderr


@pytest.mark.parametrize("child", ["false", "true"])
def test_a_child_that_fails_falls_back_to_the_export_here(seeded, tmp_path, child):
    # "false": the child exits 1; "true": it exits 0 but makes no cache entry.
    path, folder = seeded
    report, labels, stderr = start(path, folder, tmp_path / "cache", child=shutil.which(child))
    assert report["torch"] is True, stderr  # exported in-process, as before
    np.testing.assert_array_equal(labels, reference(path, folder))
    assert cached(path, tmp_path / "cache")
    assert len(said(stderr, EXPORTING)) == 1, stderr  # not again for the second try
    why = "failed (exit status 1)" if child == "false" else "left no usable cache entry"
    assert said(stderr, why, "DEBUG"), stderr


def sleeper(tmp_path):
    """Return a stand-in for the child's interpreter: it writes its pid, then sleeps."""
    script = tmp_path / "sleeper.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\nexec sleep 60\n")
    script.chmod(0o755)
    return str(script)


def running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_child_that_hangs_is_killed_and_the_export_is_made_here(seeded, tmp_path):
    path, folder = seeded
    report, labels, stderr = start(path, folder, tmp_path / "cache", child=sleeper(tmp_path),
                                   env={"TEST_CHILD_TIMEOUT_S": "1"})
    assert report["torch"] is True
    np.testing.assert_array_equal(labels, reference(path, folder))
    assert said(stderr, "timed out after 1", "DEBUG"), stderr
    pid = (tmp_path / "pid").read_text().strip() if (tmp_path / "pid").exists() else ""
    assert not pid or not running(int(pid))  # no pid: killed before it wrote one (busy machine)


INTERRUPTED = r"""
import os, signal, sys, threading, time
checkpoint, child, pidfile = sys.argv[1:4]
sys.executable = child

def interrupt():  # Ctrl-C once the child runs
    while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt, daemon=True).start()
from canet_ros.inference import SegmentationEngine
try:
    SegmentationEngine(checkpoint, device="cpu", export_in_child=True, warmup=False)
except KeyboardInterrupt:
    print("interrupted", "torch" in sys.modules, flush=True)
    time.sleep(0.5)
"""


def test_ctrl_c_during_the_childs_export_kills_it_and_stops_the_start(seeded, tmp_path):
    path, _ = seeded
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED, str(path), sleeper(tmp_path),
                           str(tmp_path / "pid")], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**os.environ, "CANET_ROS_CACHE": str(tmp_path)})
    assert proc.stdout.split() == ["interrupted", "False"], proc.stderr  # no export after it
    assert not running(int((tmp_path / "pid").read_text()))


@pytest.mark.parametrize("in_child", [False, True])
def test_a_first_start_in_process_says_it_exports_and_a_cached_one_does_not(
        seeded, tmp_path, monkeypatch, caplog, in_child):
    path, _ = seeded
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.DEBUG, logger="canet_ros.inference")  # a child's lines are DEBUG
    # torch is loaded here: export_in_child changes nothing, the export is made in-process.
    asked = {"export_in_child": True} if in_child else {}
    SegmentationEngine(path, device="cpu", warmup=False, **asked)
    lines = [r for r in caplog.records if EXPORTING in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO, caplog.text
    assert not [r for r in caplog.records if "child process" in r.getMessage()]
    caplog.clear()
    SegmentationEngine(path, device="cpu", warmup=False)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text


def int8_here():
    return ("int8" in cpu_features.cpu_precisions() and cpu_runners.runtime_for("int8")
            is not None)


def test_a_first_int8_start_calibrates_in_the_child_too(seeded, tmp_path):
    if not int8_here():
        pytest.skip("this CPU or install does not run int8")
    path, folder = seeded
    report, labels, stderr = start(path, folder, tmp_path / "cache", precision="int8")
    assert report == {"torch": False, "precision": "int8"}, stderr
    assert "making the int8 graph" not in stderr  # the child made it (its output is kept)
    assert "int8 graph is calibrated" in said(stderr, EXPORTING)[0]
    np.testing.assert_array_equal(labels, reference(path, folder, "int8"))


PARENT = r"""
import os, signal, sys, threading, time
checkpoint, child, pidfile, early = sys.argv[1:5]
sys.executable = child

def die():  # as soon as the child has started: before it can ask to end with this process
    while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGKILL)

if early:
    threading.Thread(target=die, daemon=True).start()
from canet_ros.inference import SegmentationEngine
SegmentationEngine(checkpoint, device="cpu", export_in_child=True, warmup=False)
"""
# The real child, held just before it writes the metadata that makes the graph an entry.
HELD = r"""#!{python}
import os, sys, time
code, sys.argv = sys.argv[2], ["-c"] + sys.argv[3:]
from canet_ros.inference import onnx_runtime
write = onnx_runtime._write_atomic

def held(path, data):
    if path.suffix == ".json":
        with open({pidfile!r}, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(300)
    write(path, data)

onnx_runtime._write_atomic = held
exec(compile(code, "<child>", "exec"))
"""


def wait_until(done, timeout):
    """Poll ``done`` until it is true or ``timeout`` seconds pass (a liveness bound)."""
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        time.sleep(0.05)
    return done()


def start_parent(path, child, pidfile, cache, early=False):
    log = open(cache.parent / "parent.log", "w")
    return subprocess.Popen(
        [sys.executable, "-c", PARENT, str(path), child, str(pidfile), "1" if early else ""],
        stdout=log, stderr=log, cwd=ROOT, env={**os.environ, "CANET_ROS_CACHE": str(cache)})


def child_pid(pidfile):
    text = pidfile.read_text().strip() if pidfile.exists() else ""
    return int(text) if text else None


def test_a_killed_start_takes_its_export_child_with_it(seeded, tmp_path):
    # Killed (SIGKILL, the OOM killer) while the child exports, the start left the child
    # running to the end: minutes of a robot's CPU at int8, for an export nobody waits for.
    path, _ = seeded
    cache, pidfile = tmp_path / "cache", tmp_path / "pid"
    held = tmp_path / "held.py"
    held.write_text(HELD.format(python=sys.executable, pidfile=str(pidfile)))
    held.chmod(0o755)
    parent = start_parent(path, str(held), pidfile, cache)
    pid = None
    try:
        assert wait_until(lambda: child_pid(pidfile) or parent.poll() is not None, 300)
        pid = child_pid(pidfile)
        assert pid is not None, (tmp_path / "parent.log").read_text()
        parent.kill()
        parent.wait(60)
        assert wait_until(lambda: not running(pid), 30), "the child outlived its parent"
    finally:
        parent.kill()
        if pid is not None and running(pid):
            os.kill(pid, signal.SIGKILL)
    assert list((cache / "onnx").glob("*.onnx"))  # cut short between the graph and its entry
    assert not cached(path, cache)  # so a later start exports again


def test_a_child_whose_parent_died_before_it_could_ask_exports_nothing(seeded, tmp_path):
    # The parent dies after starting the child but before the child asks the kernel to
    # end with it (the request then never fires): the child sees it and exports nothing.
    path, _ = seeded
    cache, pidfile = tmp_path / "cache", tmp_path / "pid"
    late = tmp_path / "late.sh"  # the real interpreter, once the parent is gone
    late.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nwhile kill -0 $PPID 2>/dev/null; "
                    f"do sleep 0.05; done\nexec {sys.executable} \"$@\"\n")
    late.chmod(0o755)
    parent = start_parent(path, str(late), pidfile, cache, early=True)
    assert parent.wait(300) == -signal.SIGKILL, (tmp_path / "parent.log").read_text()
    pid = child_pid(pidfile)
    try:
        assert wait_until(lambda: not running(pid), 300)  # old code: once it has exported
    finally:
        if running(pid):
            os.kill(pid, signal.SIGKILL)
    assert not cached(path, cache)

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

"""Unusual but legitimate environments, each simulated rather than set up for real.

No home directory, a broken optional runtime, a cache shared between users, no writable
cache or ROS log folder. No home is ``HOME`` unset with a uid that has no passwd entry
(``pwd.getpwuid`` raising KeyError, as it does for ``docker --user N``); an unwritable
folder is one below a regular file (ENOTDIR, which holds for root too); a broken runtime
is a package of that name on ``sys.path`` whose import raises.
"""
import errno
import importlib.util
import json
import logging
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from canet_ros.benchmark import startup
from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.inference import SegmentationEngine, cpu_runners, onnx_runtime, quantize
from canet_ros.inference.openvino_runner import openvino_available
from canet_ros.models import build_canet
from canet_ros.ros.node import describe_init_error

ROOT = Path(__file__).resolve().parents[1]
RES = (96, 64)
NODE = [sys.executable, "-m", "canet_ros.ros.node"]
# pathlib's words when it cannot find a home directory (3.10 to 3.12 alike).
NO_HOME = "Could not determine home directory."


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(7)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():  # labels that vary across the frame
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
    meta = build_metadata("mobilenetv2", CAMVID, input_size=RES)
    return save_checkpoint(tmp_path_factory.mktemp("odd") / "seeded.pt", model, meta)


@pytest.fixture
def frame():
    return np.random.default_rng(0).integers(0, 256, (RES[1], RES[0], 3), dtype=np.uint8)


@pytest.fixture
def no_home(monkeypatch):
    """No HOME and a uid without a passwd entry; no cache variable names a folder."""
    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in ("HOME", "CANET_ROS_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    # OpenVINO, imported first here, would fail (its telemetry wants a home): only here.
    monkeypatch.setattr(onnx_runtime, "_BROKEN", {}, raising=False)
    said = getattr(onnx_runtime, "_say_no_cache", None)
    if said is not None:  # the note is once per process: forget earlier tests' note
        said.cache_clear()
    with pytest.raises(RuntimeError, match=NO_HOME):  # the simulation holds
        Path.home()
    yield
    if said is not None:
        said.cache_clear()


def below_a_file(tmp_path: Path, name: str) -> Path:
    """Return a folder no one can create, root included: its parent is a regular file."""
    (tmp_path / "a_file").write_text("")
    return tmp_path / "a_file" / name


# -- 1. no home directory, no writable cache: run without the cache, say so once -----------
def test_without_a_home_directory_engines_run_uncached_and_say_so_once(
        checkpoint, frame, no_home, monkeypatch, tmp_path, caplog):
    with monkeypatch.context() as env:  # the same engine with a cache, for reference
        env.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
        expected = SegmentationEngine(checkpoint, device="cpu", warmup=False).infer(frame)
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    assert onnx_runtime.cache_dir() is None
    for _ in range(2):  # each start looks the export up, exports, stores, looks again
        engine = SegmentationEngine(checkpoint, device="cpu", warmup=False)
        assert engine.runtime == "onnxruntime"
        np.testing.assert_array_equal(engine.infer(frame).labels, expected.labels)
    notes = [r for r in caplog.records if "no cache folder" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert NO_HOME in notes[0].getMessage() and "CANET_ROS_CACHE" in notes[0].getMessage()
    # A model without a checkpoint file takes the other cache path (by fingerprint).
    torch.manual_seed(3)
    untrained = SegmentationEngine(None, backbone="mobilenetv2", device="cpu",
                                   resolution=RES, warmup=False)
    assert untrained.runtime == "onnxruntime"
    assert untrained.infer(frame).labels.shape == (RES[1], RES[0])
    # "~" in CANET_ROS_CACHE cannot be expanded either: no cache, no crash.
    monkeypatch.setenv("CANET_ROS_CACHE", "~/canet_cache")
    assert onnx_runtime.cache_dir() is None
    assert onnx_runtime.cached_graph("0" * 32, RES) is None


def test_a_cache_folder_that_cannot_be_written_is_said_once(
        checkpoint, frame, monkeypatch, tmp_path, caplog):
    with monkeypatch.context() as env:  # the same engine with a cache, for reference
        env.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
        expected = SegmentationEngine(checkpoint, device="cpu", warmup=False).infer(frame)
    unwritable = below_a_file(tmp_path, "cache")
    monkeypatch.setenv("CANET_ROS_CACHE", str(unwritable))
    monkeypatch.setattr(onnx_runtime, "_UNWRITABLE", [], raising=False)  # forget earlier notes
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    for _ in range(2):  # each start exports and tries to store the graph and its metadata
        engine = SegmentationEngine(checkpoint, device="cpu", warmup=False)
        assert engine.runtime == "onnxruntime"
        np.testing.assert_array_equal(engine.infer(frame).labels, expected.labels)
    notes = [r for r in caplog.records if "cache" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING, caplog.text
    text = notes[0].getMessage()
    assert str(unwritable / "onnx") in text and os.strerror(errno.ENOTDIR) in text
    assert "CANET_ROS_CACHE" in text


# -- 2. a broken optional runtime counts as absent -----------------------------------------
@pytest.fixture
def broken(tmp_path, monkeypatch):
    """Make ``import NAME`` run ``body`` (a fake package first on sys.path), for one test."""
    def install(name: str, body: str) -> None:
        package = tmp_path / "fake" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(body)
        monkeypatch.syspath_prepend(str(tmp_path / "fake"))
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        # What this process found broken before must not leak into or out of the test.
        monkeypatch.setattr(onnx_runtime, "_BROKEN", {}, raising=False)
    return install


def test_an_openvino_whose_import_raises_leaves_the_cpu_path_to_onnxruntime(
        broken, checkpoint, frame, caplog):
    # OpenVINO's telemetry calls Path.home() on import: without a home it raises this.
    broken("openvino", f"raise RuntimeError({NO_HOME!r})\n")
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    assert [openvino_available() for _ in range(3)] == [False] * 3
    assert cpu_runners.runtime_for("fp32") == "onnxruntime"
    assert cpu_runners.runtime_for("bf16") is None
    engine = SegmentationEngine(checkpoint, device="cpu", precision="auto", warmup=False)
    assert (engine.runtime, engine.precision) == ("onnxruntime", "fp32")
    assert engine.infer(frame).labels.shape == (RES[1], RES[0])
    said = [r for r in caplog.records if "OpenVINO" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING  # once, with the reason
    assert "RuntimeError" in said[0].getMessage() and NO_HOME in said[0].getMessage()


def test_an_openvino_missing_a_library_is_said_once_and_an_absent_one_not_at_all(
        broken, monkeypatch, caplog):
    broken("openvino", "import canet_no_such_library\n")
    caplog.set_level(logging.INFO, logger="canet_ros.inference")
    assert not openvino_available() and not openvino_available()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "canet_no_such_library" in said[0]
    caplog.clear()
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed at all
    monkeypatch.setattr(onnx_runtime, "_BROKEN", {})
    assert not openvino_available() and caplog.records == []


def test_an_onnxruntime_whose_import_raises_leaves_fp32_to_the_next_runtime(
        broken, checkpoint, frame):
    broken("onnxruntime", "raise RuntimeError('CPU instruction set not supported')\n")
    assert not onnx_runtime.onnxruntime_available()
    engine = SegmentationEngine(checkpoint, device="cpu", warmup=False)
    # fp32's order: ONNX Runtime, then OpenVINO, then the engine's torch path.
    fallback = "openvino" if importlib.util.find_spec("openvino") else "torch"
    assert (engine.runtime, engine.precision) == (fallback, "fp32")
    assert engine.infer(frame).labels.shape == (RES[1], RES[0])


# -- 3. cache files: ordinary permissions, as the umask allows ------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_cache_files_get_the_permissions_the_umask_allows(umask, tmp_path, monkeypatch):
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(quantize, "_make", lambda fp32, pre, source: b"int8 graph")

    class Frames:  # calibration frames, as far as the int8 file's name needs them
        def digest(self) -> str:
            return "frames"

    meta = dict.fromkeys(onnx_runtime._META_KEYS, "x") | {"input_size": list(RES)}
    before = os.umask(umask)
    try:
        onnx_runtime.store_graph("d" * 32, meta, RES, b"fp32 graph")
        int8 = quantize.int8_graph(b"fp32 graph of a model in memory", lambda f: f, Frames())
    finally:
        os.umask(before)
    folder = tmp_path / "cache" / "onnx"
    files = sorted(folder.iterdir())
    # the checkpoint's graph and metadata, the in-memory model's graph, its int8 graph
    assert len(files) == 4 and int8 in files and int8.read_bytes() == b"int8 graph"
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {
        f.name: oct(0o666 & ~umask) for f in files}


# -- 4. benchmark --startup: no cached-start figure without a cache -------------------------
def test_cache_export_says_why_the_export_is_not_cached(checkpoint, tmp_path, monkeypatch,
                                                        no_home):
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    assert startup._cache_export(str(checkpoint)) is None  # cached: the usual case
    unwritable = below_a_file(tmp_path, "cache")
    monkeypatch.setenv("CANET_ROS_CACHE", str(unwritable))
    reason = startup._cache_export(str(checkpoint))
    assert "could not be cached" in reason and str(unwritable / "onnx") in reason
    monkeypatch.delenv("CANET_ROS_CACHE")  # and no home to put a default cache in
    reason = startup._cache_export(str(checkpoint))
    assert "no cache folder" in reason and "CANET_ROS_CACHE" in reason


def test_startup_reports_no_cached_start_when_nothing_could_be_cached(monkeypatch):
    runs = []
    monkeypatch.setattr(startup, "_run", lambda argv, env=None: (0.5, 1, "device 'tpu'"))
    monkeypatch.setattr(startup, "_cache_export", lambda checkpoint: "no cache folder (why)")
    monkeypatch.setattr(startup, "_until_ready",
                        lambda argv, env: runs.append(env.get("CANET_ROS_CACHE")) or
                        (20.0, "ready"))
    report = startup.measure_startup([], "default", progress=False)
    assert len(runs) == 1 and Path(runs[0]).name.startswith("canet_startup_")  # the empty one
    assert report["node_ready_cached_s"] is None and report["node_ready_uncached_s"] == 20.0
    assert report["node_ready_cached_not_measured"] == "no cache folder (why)"
    assert "node_last_line" not in report
    json.dumps(report)
    cached_line = [line for line in startup.summary(report).splitlines()
                   if "export cached" in line]
    assert cached_line and cached_line[0].endswith("not measured (no cache folder (why))")


# -- 5. rclpy.init failures that are not the arguments' fault -------------------------------
def test_the_node_names_the_log_folder_it_cannot_create(tmp_path):
    pytest.importorskip("rclpy")
    logs = below_a_file(tmp_path, "log")
    proc = subprocess.run(NODE + ["--ros-args", "-p", "device:=cpu"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, ROS_LOG_DIR=str(logs)))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (f"cannot initialize ROS: cannot create the ROS log folder '{logs}' "
            f"({os.strerror(errno.ENOTDIR)}): set ROS_LOG_DIR") in proc.stderr
    assert "bad ROS arguments" not in proc.stderr


def test_rcl_argument_errors_still_say_bad_ros_arguments():
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.Context()
    with pytest.raises(Exception) as info:
        rclpy.init(args=["node", "--ros-args", "-p", "x"], context=context)
    text = describe_init_error(info.value)
    assert text.startswith("bad ROS arguments: Couldn't parse parameter override rule")
    assert "-p name:=value" in text and ".c:" not in text  # no C source locations


@pytest.mark.parametrize("args, words", [
    (["--ros-args", "--param-file", "x.yaml"], "unknown ROS arguments ['--param-file', 'x.yaml']"),
    (["--ros-args", "-e", "/bad//enclave"], "Enclave name is not valid"),
])
def test_unknown_ros_arguments_and_a_bad_enclave_are_bad_ros_arguments(args, words):
    rclpy = pytest.importorskip("rclpy")
    with pytest.raises(Exception) as info:
        rclpy.init(args=["node", *args], context=rclpy.Context())
    text = describe_init_error(info.value)
    assert text.startswith("bad ROS arguments: ") and words in text and ".c:" not in text


def test_startup_reports_the_node_not_measured_when_ros_cannot_initialize(
        tmp_path, monkeypatch):
    pytest.importorskip("rclpy")
    monkeypatch.setenv("ROS_LOG_DIR", str(below_a_file(tmp_path, "log")))
    monkeypatch.setattr(startup, "_entry_point", lambda name, module: (
        NODE if name == "segmentation_node" else [sys.executable, "-c", ""]))
    touched = []
    monkeypatch.setattr(startup, "_cache_export", lambda checkpoint: touched.append("cache"))
    monkeypatch.setattr(startup, "_until_ready",
                        lambda argv, env: touched.append("ready") or (1.0, "ready"))
    report = startup.measure_startup([], "default", progress=False)
    assert touched == []  # neither the export nor starts that cannot happen
    assert [report[k] for k in ("node_bad_parameter_exit_s", "node_bad_parameter_status",
                                "node_ready_cached_s", "node_ready_uncached_s")] == [None] * 4
    assert "cannot create the ROS log folder" in report["node_not_measured"]
    text = startup.summary(report)
    assert "not measured" in text and "bad parameter" not in text

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

"""A CANET_ROS_CACHE another user filled: OpenVINO runs from it and nothing in it is deleted.

OpenVINO writes its compiled blobs mode 0440 whatever the umask, so another user cannot
read them, and where it cannot read one it removes and writes it again, which fails in a
folder that user cannot write ("cannot remove: Permission denied"). A reviewer saw bf16 fall
back to fp32, auto try to delete root's good int8 graph, and ``--precision int8`` exit 1
(a Docker image warmed as root, run as another user).

The first test uses a real second user where it can: run as root (whose permission checks
pass everything), its child process drops to uid/gid 65534 before building the engines;
run as anyone else, it makes the cache's folders read-only and its blobs unreadable, which
is what a second user sees of a cache someone else filled. The others fake the failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from canet_ros.inference import cpu_features, cpu_runners, quantize
from canet_ros.inference import openvino_runner as ovr

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

SIZE = (80, 56)
NOBODY = 65534
# argv: fill|other, checkpoint, precisions (comma-separated). "other" first builds each
# engine as this user from a copy of the cache, so every module the build imports is loaded
# before the drop to uid 65534, which may not read this Python's standard library.
CHILD = textwrap.dedent("""
    import json, logging, os, shutil, sys
    import difflib, modulefinder, sqlite3  # noqa: imported on failures, as are these:
    import onnx, onnxruntime, torch.onnx, torchvision  # noqa
    from canet_ros.inference import SegmentationEngine

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    mode, checkpoint, precisions = sys.argv[1], sys.argv[2], sys.argv[3].split(",")

    def build(precision):
        return SegmentationEngine(checkpoint, device="cpu", precision=precision,
                                  resolution=(80, 56), warmup=False)

    if mode == "other":
        cache = os.environ["CANET_ROS_CACHE"]
        os.environ["CANET_ROS_CACHE"] = cache + "_warm"
        # Blobs left out: this user may not read them (and needs them not).
        shutil.copytree(cache, cache + "_warm",
                        ignore=lambda folder, names: [n for n in names if n.endswith(".blob")])
        for folder, _, _ in os.walk(cache + "_warm"):
            os.chmod(folder, 0o755)
        for precision in precisions:
            build(precision)
        shutil.rmtree(cache + "_warm")
        os.environ["CANET_ROS_CACHE"] = cache
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
    result = {}
    for precision in precisions:
        try:
            result[precision] = build(precision).precision
        except Exception as exc:
            result[precision] = f"failed: {exc}"
    print(json.dumps(result))
""")


def run_child(mode, checkpoint, precisions, cache):
    env = dict(os.environ, CANET_ROS_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(checkpoint),
                           ",".join(precisions)], capture_output=True, text=True, env=env,
                          umask=0o022, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def precisions_here():
    native = cpu_features.cpu_precisions()
    return [p for p in ("bf16", "int8") if p in native and cpu_runners.runtime_for(p) == "openvino"]


@pytest.fixture(scope="module")
def shared():
    """Make a world-readable folder with a checkpoint and a cache filled at bf16 and int8."""
    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID
    from canet_ros.models import build_canet

    if not precisions_here():
        pytest.skip("this CPU or install runs neither bf16 nor int8 on OpenVINO")
    folder = Path(tempfile.mkdtemp(prefix="canet_shared_cache_"))  # not pytest's 0700 one
    try:
        folder.chmod(0o755)
        torch.manual_seed(5)
        model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
        checkpoint = save_checkpoint(folder / "model.pt", model,
                                     build_metadata("mobilenetv2", CAMVID, input_size=(96, 64)))
        checkpoint.chmod(0o644)
        result, _ = run_child("fill", checkpoint, precisions_here(), folder / "filled")
        assert result == {p: p for p in precisions_here()}
        yield checkpoint, folder / "filled"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def contents(cache):
    return {p.relative_to(cache): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}


def as_other_user(cache):
    """Make ``cache`` look to this process as another user's cache looks to it."""
    if os.geteuid() == 0:
        return  # the child drops to uid 65534: root owns the cache, as a Docker build leaves it
    for blob in (cache / "openvino").glob("*.blob"):
        blob.chmod(0)
    for sub in (cache / "onnx", cache / "openvino"):
        sub.chmod(0o555)


def test_a_cache_another_user_filled_runs_every_precision_and_keeps_its_files(shared):
    checkpoint, filled = shared
    cache = filled.parent / "cache"
    shutil.copytree(filled, cache)
    try:
        before = contents(cache)
        assert any(p.suffix == ".blob" for p in before)  # OpenVINO's, which it cannot read
        assert any("_int8_" in p.name for p in before)
        as_other_user(cache)
        wanted = precisions_here() + ["auto"]
        result, stderr = run_child("other", checkpoint, wanted, cache)
        # auto takes the fastest this CPU runs, its int8 graph being in the cache.
        expected = {p: p for p in precisions_here()} | {"auto": precisions_here()[-1]}
        assert result == expected, stderr[-3000:]
        assert "unusable" not in stderr and "making the int8 graph" not in stderr
    finally:
        for sub in (cache / "onnx", cache / "openvino"):
            sub.chmod(0o755)
        for blob in (cache / "openvino").glob("*.blob"):
            blob.chmod(0o440)
    assert contents(cache) == before  # nothing deleted or rewritten


def tiny_graph(path):
    """Write a valid one-convolution ONNX graph, standing in for a good int8 graph."""
    from canet_ros.inference.onnx_runtime import _export_bytes

    torch.manual_seed(0)
    path.write_bytes(_export_bytes(torch.nn.Conv2d(3, 2, 3, padding=1).eval(), (16, 8)))
    return path


def test_a_good_int8_graph_is_kept_when_its_runtime_fails(tmp_path, monkeypatch):
    """An OpenVINO failure that is not the file's costs no calibration and deletes nothing."""
    good = tiny_graph(tmp_path / "model_int8_0.onnx")
    made = []
    monkeypatch.setattr(cpu_runners, "_int8_ready", lambda graph: True)
    monkeypatch.setattr(quantize, "int8_graph", lambda *a: made.append(1) or good)

    def fails(*args):
        raise RuntimeError("filesystem error: cannot remove: Permission denied [1.blob]")

    monkeypatch.setattr(cpu_runners, "_runner", fails)
    with pytest.raises(RuntimeError, match="cannot remove"):
        cpu_runners._build(tmp_path / "model.onnx", (16, 8), 2, "int8", "auto",
                           lambda frame: frame, None)
    assert good.is_file() and made == [1]


def test_a_damaged_int8_graph_in_a_folder_not_ours_is_left_alone(tmp_path, monkeypatch):
    damaged = tmp_path / "model_int8_0.onnx"
    damaged.write_bytes(tiny_graph(tmp_path / "whole.onnx").read_bytes()[:100])
    monkeypatch.setattr(cpu_runners, "_int8_ready", lambda graph: True)
    monkeypatch.setattr(quantize, "int8_graph", lambda *a: damaged)
    monkeypatch.setattr(cpu_runners, "_runner", lambda *a: (_ for _ in ()).throw(
        RuntimeError("cannot parse")))
    real = os.access
    # Root may write anywhere: fake the folder another user's cache would be.
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if Path(path) == tmp_path else real(path, mode, **kw)))
    with pytest.raises(RuntimeError, match="cannot parse"):
        cpu_runners._build(tmp_path / "model.onnx", (16, 8), 2, "int8", "auto",
                           lambda frame: frame, None)
    assert damaged.is_file()


class CacheRefusingCore:
    """OpenVINO's Core, except that a compile with a CACHE_DIR fails as in a shared cache."""

    def __init__(self, real):
        self.real, self.configs = real, []

    def read_model(self, *args):
        return self.real.read_model(*args)

    def compile_model(self, model, device, config):
        self.configs.append(dict(config))
        if "CACHE_DIR" in config:
            raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\n"
                               "filesystem error: cannot remove: Permission denied [1.blob]\n")
        return self.real.compile_model(model, device, config)


def test_a_compile_the_openvino_cache_breaks_is_done_again_without_it(
        tmp_path, monkeypatch, caplog):
    fake = CacheRefusingCore(ovr.core())
    monkeypatch.setattr(ovr, "core", lambda: fake)
    runner = ovr.OpenVinoRunner(tiny_graph(tmp_path / "g.onnx"), (16, 8), 2, "fp32")
    assert runner.forward_numpy(torch.zeros(1, 3, 8, 16).numpy()).shape == (1, 2, 8, 16)
    assert ["CACHE_DIR" in c for c in fake.configs] == [True, False]
    assert "(filesystem error: cannot remove: Permission denied [1.blob]); compiling without " \
           "it" in caplog.text


def test_the_openvino_cache_is_used_only_where_this_process_can(tmp_path, monkeypatch):
    """Faked permissions (root passes every check): which folders OpenVINO is given."""
    folder = tmp_path / "openvino"
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path))
    assert ovr.openvino_cache() == folder and folder.is_dir()  # made here
    (folder / "1.blob").write_bytes(b"x")
    denied = {}
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if mode & denied.get(Path(path), 0) else real(path, mode, **kw)))
    denied[folder] = os.W_OK
    assert ovr.openvino_cache() == folder  # read-only, every blob readable: used as it is
    denied[folder / "1.blob"] = os.R_OK
    assert ovr.openvino_cache() is None  # OpenVINO would try to remove that blob
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "file" / "cache"))
    (tmp_path / "file").write_bytes(b"")
    assert ovr.openvino_cache() is None  # cannot be made

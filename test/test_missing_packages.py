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

"""A package that is not installed: one line naming it, never a traceback.

torch and torchvision are deliberately not in setup.py (README.md, "Installing torch"); a
robot's image can lack a declared dependency too. In this process a package is hidden by
a ``None`` entry in ``sys.modules``; where modules loaded earlier would hide the effect, a
fresh interpreter hides it with a finder that raises as a missing package's import does.
"""
import ast
import io
import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from canet_ros import errors
from canet_ros.cli import run_command
from canet_ros.cli.info_system import report_lines, system_report
from canet_ros.inference import EngineError, cpu_features, cpu_runners
from canet_ros.progress import PlainProgress, progress
from canet_ros.ros.engine_start import StartupError, load_engine
from canet_ros.training.runlog import RunLog

ROOT = Path(__file__).resolve().parents[1]
# A sitecustomize module: every interpreter started with it on PYTHONPATH (the export's
# child process too) fails to import the packages $CANET_TEST_HIDE names.
HIDE = """\
import os, sys
HIDDEN = set(os.environ.get("CANET_TEST_HIDE", "").split(","))
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
"""


def hidden_run(tmp_path, hidden, body, *args):
    """Run ``body`` in a fresh interpreter where ``hidden`` (comma-separated) is not installed."""
    (tmp_path / "hide").mkdir(exist_ok=True)
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE)
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path / 'hide'}", "CANET_TEST_HIDE": hidden,
           "CANET_ROS_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    code = "import sys\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code, hidden, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def block(monkeypatch, *names):
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def setup_py():
    """Return setup()'s keyword arguments that are literals (install_requires, extras)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "setup")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords
            if k.arg in ("install_requires", "extras_require")}


def dist_name(requirement):
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()


# -- 1. torch, torchvision and the declared dependencies: one line, status 1 -------------
CLI = """\
from canet_ros.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("hidden, argv, expected", [
    ("torch", ["info", "--checkpoint", "default"],
     "canet info: error: torch is not installed, and this needs torch and torchvision"),
    ("torchvision", ["export", "--checkpoint", "default", "--out", "x.onnx"],
     "canet export: error: torchvision is not installed, and this needs torch and torchvision"),
    ("rosbags", ["segment-bag", "sample", "--out", "out"],
     "canet segment-bag: error: the package rosbags, which canet_ros needs, is not installed: "
     "pip install rosbags"),
    ("yaml", ["--help"], "canet: error: the package pyyaml (import yaml), which canet_ros "
     "needs, is not installed: pip install pyyaml"),
])
def test_a_missing_package_is_one_error_line_and_status_1(tmp_path, hidden, argv, expected):
    done = hidden_run(tmp_path, hidden, CLI, *argv)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(expected), done.stderr
    assert "Traceback" not in done.stderr


def test_the_torch_line_quotes_what_the_readme_and_setup_py_have():
    line = errors.missing_package(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert "README.md, 'Installing torch'" in line and "canet_ros[torch]" in line
    assert "\n## Installing torch\n" in (ROOT / "README.md").read_text()
    torch_extra = set(map(dist_name, setup_py()["extras_require"]["torch"]))
    assert torch_extra == {"torch", "torchvision"}


def test_every_declared_dependency_is_named_by_its_pip_name():
    declared = set(map(dist_name, setup_py()["install_requires"]))
    assert set(errors.REQUIRED_PACKAGES.values()) == declared


def test_pillow_missing_in_a_command_is_one_line(monkeypatch, capsys):
    block(monkeypatch, "PIL")

    def reads_a_palette_png(_args):
        from PIL import Image  # noqa: F401 (as image_files does)

    assert run_command(reads_a_palette_png, SimpleNamespace(), "canet evaluate") == 1
    assert capsys.readouterr().err == ("canet evaluate: error: the package pillow (import "
                                       "PIL), which canet_ros needs, is not installed: pip "
                                       "install pillow\n")


@pytest.mark.parametrize("exc", [
    ModuleNotFoundError("No module named 'canet_ros.nope'", name="canet_ros.nope"),
    ModuleNotFoundError("No module named 'torch._C'", name="torch._C"),  # a broken torch
    ImportError("libtorch_cpu.so: undefined symbol: x", name="torch"),
])
def test_other_import_errors_keep_their_traceback(exc):
    def fails(_args):
        raise exc

    with pytest.raises(type(exc)):
        run_command(fails, SimpleNamespace())


NODE = """\
import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
from types import SimpleNamespace
from canet_ros.ros.engine_start import StartupError, default_engine_factory, load_engine
cfg = SimpleNamespace(checkpoint="default", backbone=None, device="cpu", precision="auto",
                      resolution=None, output_size="input", overlay_alpha=0.5)
try:
    load_engine(default_engine_factory, cfg, None)
except StartupError as exc:
    print("StartupError:", exc)
"""


def test_the_node_without_torch_and_no_cached_export_refuses_in_one_line(tmp_path):
    done = hidden_run(tmp_path, "torch", NODE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StartupError: torch is not installed, and this needs torch "
                                  "and torchvision (README.md, 'Installing torch'"), done.stdout
    assert "whose ONNX export is cached" in done.stdout
    # No "exporting it for the CPU runtime (torch, ...)" line before a refusal naming torch.
    assert "export" not in done.stderr, done.stderr


def test_the_node_reports_a_missing_package_as_a_startup_error(monkeypatch):
    block(monkeypatch, "torchvision")

    def factory(*_args, **_kwargs):
        import torchvision  # noqa: F401 (as the backbones do)

    cfg = SimpleNamespace(checkpoint="default", backbone=None, device="cpu", precision="auto",
                          resolution=None, output_size="input", overlay_alpha=0.5)
    with pytest.raises(StartupError, match="^torchvision is not installed, and this needs"):
        load_engine(factory, cfg, None)


# -- 1. benchmark without torch keeps its measurements ------------------------------------
BENCH = """\
import json
import canet_ros.benchmark as b
engine = SimpleNamespace(backbone="mobilenetv2", num_classes=11, resolution=(64, 48),
                         device_name="cpu", device_type="cpu", runtime="onnxruntime",
                         precision="fp32")
pipe = SimpleNamespace(stream_ms=lambda n, p: 5.0, stages={"all": [], "labels": []})
calls = {name: (lambda: None) for name in ("model", "pipeline", "pipeline_labels",
                                           "pipeline_all")}
m = b._Measured((64, 48), "sample", 0)
b._time_everything(m, engine, pipe, calls, 3, None, False)
print(json.dumps(b._assemble(engine, pipe, m, False, None)))
"""


def test_benchmark_without_torch_reports_its_timings_and_says_what_it_left_out(tmp_path):
    done = hidden_run(tmp_path, "torch", "from types import SimpleNamespace\n" + BENCH)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["iters"] == 3 and report["model_ms"] >= 0 and report["pipeline_stream_ms"] == 5
    assert report["gmacs"] is report["model_gflops"] is report["reference_gflops"] is None
    assert report["torch"] is None
    assert any("reference matmul runs in torch" in n for n in report["notes"])
    assert any(n.startswith("gmacs, model_gflops not computed") for n in report["notes"])


# -- 2. the packages a precision needs, onnx included where the export is still to make ---
def test_bf16_from_a_checkpoint_names_onnx_with_openvino(monkeypatch):
    block(monkeypatch, "onnxruntime", "openvino", "onnx")
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    # Installing openvino alone was refused next for onnx, which the export needs.
    with pytest.raises(EngineError, match="needs: pip install openvino onnx$"):
        cpu_runners.choose_precision("bf16")
    with pytest.raises(EngineError, match="with runtime 'onnxruntime' needs: pip install "
                                          "onnxruntime onnx$"):
        cpu_runners.choose_precision("fp32", "onnxruntime")
    # An export at hand (the cache's) needs only the runtime.
    with pytest.raises(EngineError, match="needs: pip install openvino$"):
        cpu_runners.make_cpu_runner(b"graph", (64, 64), 11, "bf16")


def test_the_openvino_extra_holds_what_bf16_and_int8_need(monkeypatch):
    block(monkeypatch, "onnxruntime", "openvino", "onnx")
    extra = set(map(dist_name, setup_py()["extras_require"]["openvino"]))
    for precision in ("bf16", "int8"):
        assert set(cpu_runners.packages_missing(precision, "openvino").split()) <= extra


# -- 3. int8 lacking only its quantizer's packages is not "no runtime" --------------------
def test_info_system_names_the_package_int8_lacks(monkeypatch):
    pytest.importorskip("openvino", reason="the case is openvino installed, onnx not")
    block(monkeypatch, "onnx")
    report = system_report(flags=frozenset({"avx2", "avx512f", "avx512_vnni"}))
    assert report["cpu"]["needs"]["int8"] == "onnx"
    line = next(t for t in report_lines(report) if t.startswith("  int8: "))
    assert line.startswith("  int8: native, but needs: pip install onnx ("), line


def test_benchmark_compare_names_the_package_int8_lacks(monkeypatch):
    from canet_ros.benchmark import cpu_precisions

    block(monkeypatch, "onnx")
    monkeypatch.setattr(cpu_precisions, "cpu_precisions", lambda: ("int8",))
    monkeypatch.setattr(cpu_precisions.kernels, "installed", lambda: False)
    engine = SimpleNamespace(runtime="onnxruntime")
    _, notes = cpu_precisions.cpu_precision_fns(engine, b"", np.zeros(1), None, False)
    assert "engine_int8 not timed: it needs pip install onnx" in notes


# -- 4. tensorboard ------------------------------------------------------------------------
def test_training_without_tensorboard_says_tb_is_not_written(monkeypatch, tmp_path, caplog):
    block(monkeypatch, "tensorboard")
    with caplog.at_level(logging.WARNING, logger="canet_ros.training"):
        log = RunLog(tmp_path, ["val"])
    log.close()
    assert [r.getMessage() for r in caplog.records] == [
        "TensorBoard scalars not written (tb/): tensorboard is not installed (pip install "
        "tensorboard, or canet_ros[train])"]
    assert not (tmp_path / "tb").exists() and (tmp_path / "log.csv").is_file()
    assert "[train]" in (ROOT / "docs" / "training.md").read_text().split("`tb/` (")[1][:400]
    assert "tensorboard>=2.12" in setup_py()["extras_require"]["train"]


def test_info_system_lists_tensorboard():
    report = system_report()
    assert "tensorboard" in report["packages"]
    assert any(line.startswith("  tensorboard ") for line in report_lines(report))


# -- 5. tqdm missing on a terminal: plain progress lines -----------------------------------
class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_without_tqdm_prints_plain_lines(monkeypatch):
    block(monkeypatch, "tqdm")
    out = Terminal()
    bar = progress(range(4), desc="frames", unit="frame", file=out)
    assert isinstance(bar, PlainProgress)
    assert list(bar) == [0, 1, 2, 3]
    assert out.getvalue().splitlines()[-1].startswith("frames: 4/4 frame (100%)")

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

"""A checkpoint armed with code that runs when unpickled is refused, and nothing runs.

The file is made with ``torch.save`` (the real zip format ``torch.load`` reads), holding
an object whose unpickling calls ``exec`` to create a marker file. Around the payload it
is a complete, valid checkpoint, so a loader that unpickles it unsafely would not only
run the code but also load the model without any error. The first test proves the
payload is live; the others load the file through the package's entry points that read
checkpoints (functions, engine, CLI) and check that each refuses it with an error naming
the file, and that the marker never appears.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from canet_ros.checkpoint import (
    CheckpointError,
    build_metadata,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from canet_ros.classes import CAMVID
from canet_ros.cli import EXIT_ERROR
from canet_ros.cli import main as canet_main
from canet_ros.models import BackboneWeightsError, build_canet

REPO = Path(__file__).resolve().parents[1]


class ArmedPayload:
    """Unpickling this runs ``exec``: it writes ``marker`` (and would do anything else)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('payload ran')",)


@pytest.fixture(scope="module")
def valid_blob(tmp_path_factory):
    path = tmp_path_factory.mktemp("ok") / "ok.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_canet("mobilenetv2", CAMVID.num_classes),
                    build_metadata("mobilenetv2", CAMVID, input_size=(64, 48)))
    return read_checkpoint(path)


def armed_checkpoint(folder: Path, blob: dict, name: str = "evil.pt") -> tuple[Path, Path]:
    """Write a valid canet_ros checkpoint with a payload in its metrics; return (file, marker)."""
    marker = folder / f"{name}.payload-ran"
    evil = dict(blob)
    evil["metrics"] = {"val_miou": 0.5, "note": ArmedPayload(marker)}
    path = folder / name
    torch.save(evil, path)
    assert not marker.exists()
    return path, marker


def test_the_payload_is_live_when_unpickled_unsafely(tmp_path, valid_blob):
    """Positive control: without weights_only the file runs code and loads fine."""
    path, marker = armed_checkpoint(tmp_path, valid_blob)
    blob = torch.load(path, weights_only=False)
    assert marker.read_text() == "payload ran"
    assert blob["format"] == "canet_ros.checkpoint" and "state_dict" in blob


def test_read_and_load_refuse_and_run_nothing(tmp_path, valid_blob):
    path, marker = armed_checkpoint(tmp_path, valid_blob)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_export_refuses_and_writes_nothing(tmp_path, valid_blob):
    from canet_ros.training.export import export_checkpoint

    path, marker = armed_checkpoint(tmp_path, valid_blob)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        export_checkpoint(path, tmp_path / "out" / "shipped.pt")
    assert not marker.exists()
    assert not (tmp_path / "out" / "shipped.pt").exists()


def test_engine_refuses_and_runs_nothing(tmp_path, valid_blob):
    from canet_ros.inference import EngineError, SegmentationEngine

    path, marker = armed_checkpoint(tmp_path, valid_blob)
    with pytest.raises(EngineError, match=r"evil\.pt"):
        SegmentationEngine(path, device="cpu", runtime="torch", warmup=False)
    assert not marker.exists()


@pytest.mark.parametrize("argv", [
    ["train", "--resume", "{ck}"],
    ["train", "--init-weights", "{ck}", "--data-root", "{data}", "--out-dir", "{tmp}/run",
     "--device", "cpu", "--workers", "0"],
    ["evaluate", "--checkpoint", "{ck}", "--data-root", "{data}", "--device", "cpu"],
], ids=["train-resume", "train-init-weights", "evaluate"])
def test_cli_commands_refuse_and_run_nothing(tmp_path, valid_blob, capsys, monkeypatch, argv):
    from test_training import make_camvid_tree

    monkeypatch.chdir(tmp_path)  # nothing a failed command might write lands in the repo
    data = make_camvid_tree(tmp_path / "camvid", frames=2)  # valid data: the file is read
    path, marker = armed_checkpoint(tmp_path, valid_blob)
    args = [a.format(ck=path, tmp=tmp_path, data=data) for a in argv]
    assert canet_main(args) == EXIT_ERROR
    assert "evil.pt" in capsys.readouterr().err
    assert not marker.exists()


def test_canet_info_in_a_subprocess_refuses_and_runs_nothing(tmp_path, valid_blob):
    path, marker = armed_checkpoint(tmp_path, valid_blob)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    code = "import sys; from canet_ros.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "info", "--checkpoint", str(path),
                           "--json"], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert proc.returncode == EXIT_ERROR, proc.stdout
    assert "evil.pt" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert not marker.exists()


def test_backbone_weights_file_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "backbone.payload-ran"
    path = tmp_path / "mbv2.pth"
    torch.save({"features.0.0.weight": torch.zeros(1), "x": ArmedPayload(marker)}, path)
    with pytest.raises(BackboneWeightsError, match=r"mbv2\.pth"):
        build_canet("mobilenetv2", 11, pretrained_backbone=str(path))
    assert not marker.exists()


def test_hub_cache_file_refused_and_runs_nothing(tmp_path, monkeypatch):
    """A planted file in the torch hub cache must not run code either."""
    marker = tmp_path / "hub.payload-ran"
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save({"x": ArmedPayload(marker)}, cache / "mobilenet_v2-b0353104.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackboneWeightsError):
        build_canet("mobilenetv2", 11, pretrained_backbone=True)
    assert not marker.exists()


def _torch_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "load" and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == "torch":
            yield node


def test_every_torch_load_in_the_package_is_weights_only():
    """Catches a new unsafe load anywhere in the package, not only in checkpoint.py."""
    seen = 0
    for path in sorted((REPO / "canet_ros").rglob("*.py")):
        for call in _torch_load_calls(ast.parse(path.read_text(), str(path))):
            seen += 1
            flags = {k.arg: k.value for k in call.keywords}
            value = flags.get("weights_only")
            assert isinstance(value, ast.Constant) and value.value is True, \
                f"{path.relative_to(REPO)}:{call.lineno}: torch.load without weights_only=True"
    assert seen >= 2  # checkpoint.py and the backbone weights loader

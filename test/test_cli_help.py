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

"""``canet --help``, every ``canet COMMAND --help`` and ``--version`` load no torch."""
import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import canet_ros
from canet_ros.cli import EPILOG, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
# What must stay out of a --help: each of these takes from a tenth of a second (cv2,
# onnx) to several seconds (torch) to import.
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "cv2")
CHILD = """
import json, sys
from canet_ros.cli import main
try:
    main(sys.argv[1:])
    code = None
except SystemExit as exc:
    code = exc.code
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[0].split(',')))
sys.stderr.write('\\n' + json.dumps({'code': code, 'loaded': loaded}))
"""


def _commands():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def _child(*argv):
    # sys.argv[0] of "python -c" is "-c"; the heavy-module list travels in its place.
    code = CHILD.replace("sys.argv[0]", repr(",".join(HEAVY)))
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    return proc.stdout, json.loads(proc.stderr.strip().splitlines()[-1])


def test_the_commands_are_all_there():
    assert set(_commands()) == {"info", "train", "evaluate", "benchmark", "segment-bag",
                                "export", "extract-frames", "dataset"}


HELPED = ("info", "train", "evaluate", "benchmark", "segment-bag", "export", "extract-frames",
          "dataset")


@pytest.mark.parametrize("argv", [["--help"], *([c, "--help"] for c in HELPED)],
                         ids=lambda argv: " ".join(argv))
def test_help_loads_no_heavy_module(argv):
    out, result = _child(*argv)
    assert result["code"] == 0
    assert out.startswith(f"usage: canet {argv[0] if len(argv) == 2 else ''}".rstrip())
    assert result["loaded"] == [], f"canet {' '.join(argv)} imported {result['loaded']}"


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"canet {canet_ros.__version__}\n"
    # The installed distribution and the ROS manifest say the same.
    assert canet_ros.__version__ == importlib.metadata.version("canet_ros")
    manifest = (ROOT / "package.xml").read_text()
    assert f"<version>{canet_ros.__version__}</version>" in manifest


def test_version_loads_no_heavy_module():
    out, result = _child("--version")
    assert result["code"] == 0 and out.strip() == f"canet {canet_ros.__version__}"
    assert result["loaded"] == []


def test_help_documents_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert EPILOG in out
    documented = {int(m.group(1)) for m in re.finditer(r"^  (\d+) ", EPILOG, re.M)}
    assert documented == {0, 1, 2, 130, 141, 143}


def test_choice_lists_name_what_the_package_has():
    # cli/choices.py repeats these names so that --help needs no torch.
    from canet_ros.cli import choices
    from canet_ros.data import DATASETS
    from canet_ros.models import BACKBONES

    assert choices.BACKBONES == BACKBONES
    assert choices.DATASETS == DATASETS

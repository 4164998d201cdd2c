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

"""Ctrl-C while torch is still loading ends quietly with status 130, like the rest."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Runs ``canet ARGS`` and says on stdout when torch's compiled core starts to load,
# so the test can interrupt it in the middle of ``import torch``.
CHILD = """
import importlib.abc, sys

class Announce(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch._C":
            sys.meta_path.remove(self)
            print("loading torch", flush=True)
        return None

sys.meta_path.insert(0, Announce())
from canet_ros.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("argv", [["info"], ["export", "--out", "never.onnx"]])
def test_ctrl_c_while_torch_loads(argv, tmp_path):
    argv = [str(tmp_path / a) if a.endswith(".onnx") else a for a in argv]
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline() == "loading torch\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    # "canet: ..." if torch is still loaded while the command line is read, which a
    # subcommand module importing torch at its top would cause (test_cli_help.py).
    assert err.splitlines()[-1] in (f"canet {argv[0]}: interrupted", "canet: interrupted")
    assert "Traceback" not in err and len(err.splitlines()) <= 2, err  # export says "exporting"
    assert out == ""

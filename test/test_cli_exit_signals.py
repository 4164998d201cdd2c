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

"""A stop signal after a command has finished leaves its exit status alone.

After ``canet`` returns, the interpreter still runs atexit callbacks and tears its
modules down (about 2 s with torch loaded), and there Python no longer turns SIGINT
into KeyboardInterrupt. A Ctrl-C or SIGTERM landing then used to print a traceback
from an atexit callback, or kill the process (status -2/-15) after a run that had
finished. The signal is sent here from the last atexit callback, by a sitecustomize
module, so it lands in that window every time; the commands are the installed console
scripts and ``python -m``, as users run them.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SITE = """import atexit, os, signal, time
atexit.register(lambda: (os.kill(os.getpid(), signal.{signal}), time.sleep(0.5)))
"""


def _run(tmp_path: Path, signal_name: str, *argv: str) -> subprocess.CompletedProcess:
    site = tmp_path / signal_name
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE.format(signal=signal_name))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_during_shutdown_keeps_the_commands_status(tmp_path, signal_name):
    canet = Path(sys.executable).with_name("canet")
    if not canet.is_file():
        pytest.skip("the canet console script is not installed beside this Python")
    done = _run(tmp_path, signal_name, str(canet), "info")
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, \
        done.stderr
    assert "CANet" in done.stdout or "canet" in done.stdout.lower()


@pytest.mark.parametrize("module", ["canet_ros.cli", "canet_ros.cli.evaluate",
                                    "canet_ros.cli.train", "canet_ros.cli.segment_bag"])
def test_python_dash_m_keeps_the_status_of_a_failed_command_too(tmp_path, module):
    # An unknown flag: argparse's status 2 must survive the signal during shutdown.
    argv = ["evaluate"] if module == "canet_ros.cli" else []
    done = _run(tmp_path, "SIGTERM", sys.executable, "-m", module, *argv, "--no-such-flag")
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr

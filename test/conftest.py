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

"""Shared pytest setup.

ROS traffic of a test run stays on this machine and in a domain no other run uses at
the same time, and its log files in the run's temporary folder; ONNX exports go to a
per-run folder, never the user's cache;
torch-heavy modules can ask for one thread.
"""
import builtins
import fcntl
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Optional

import pytest

# The colcon workspace and per-test DDS domains of the ros2 launch tests.
pytest_plugins = ("ros_workspace",)


def pytest_configure(config):
    # rosidl's parser (lark) imports deprecated modules when message types load.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:lark.utils")
    # A shell without job control starts background jobs with SIGINT ignored, and an
    # ignored signal stays ignored in every child: the Ctrl-C tests' processes would
    # never see theirs. A handler here is reset to the default in each child instead.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _propagating(name: str) -> bool:
    return name == "canet_ros" or name.startswith("canet_ros.")


@pytest.fixture(autouse=True)
def canet_logs_reach_caplog(monkeypatch):
    """Keep the package's log records flowing to pytest's capture.

    The launch_pytest plugin imports ``launch``, whose logger class never propagates to the
    root logger; loggers of ours made after that would bypass caplog. (A plain ``canet``
    process never imports launch.)
    """
    import logging

    for name, logger in list(logging.root.manager.loggerDict.items()):
        if _propagating(name) and isinstance(logger, logging.Logger):
            logger.propagate = True
    base = logging.getLoggerClass()
    if base is not logging.Logger:
        class Propagating(base):
            def __init__(self, name, *args, **kwargs):
                super().__init__(name, *args, **kwargs)
                if _propagating(name):
                    self.propagate = True

        monkeypatch.setattr(logging.Logger.manager, "loggerClass", Propagating)
    yield


# Figures from pytest-xdist's workers (`pytest -n auto`, README's test command), gathered
# here in the controller so the summary shows them as a plain run does.
_WORKER_FIGURES: list = []


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """Use one worker per CPU this process may run on, at most 4 (each loads torch and ROS)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _WORKER_FIGURES.extend(getattr(node, "workeroutput", {}).get("canet_figures", []))


def pytest_terminal_summary(terminalreporter):
    """Figures the ROS system tests measured (start-up, shutdown, delivery): shown, not tested."""
    processes = sys.modules.get("ros_processes")
    figures = list(processes.FIGURES if processes is not None else []) + _WORKER_FIGURES
    if figures:
        terminalreporter.section("canet_ros node figures (measured, not asserted)")
        for line in figures:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session):
    """Stop node and camera processes a failed test left running; hand figures to xdist."""
    processes = sys.modules.get("ros_processes")
    for process in processes.RosProcess.started if processes is not None else ():
        process.stop()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and processes is not None:
        workeroutput["canet_figures"] = list(processes.FIGURES)


# Linux's ephemeral ports leave DDS domains 0..101 free of clashes; 0 is everybody's default.
_DOMAINS = range(1, 102)


def _open_lock(path: Path) -> Optional[int]:
    """Open a domain's lock file for flock, or give None where this user cannot.

    The domains are the machine's, so every user's runs lock the same files, which are
    never removed: flock needs no more than read access, which a file another user's run
    left (0644) still gives.
    """
    for _ in range(2):  # a second try where another run created it between the two opens
        try:  # never through a link: /tmp is everyone's
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        except OSError:
            return None
        try:  # O_EXCL: protected_regular refuses O_CREAT on another user's file in /tmp
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        except OSError:
            return None
        os.fchmod(fd, 0o666)  # whatever the umask, so other users' runs open it too
        return fd
    return None


def _claim_domain():
    """Lock a domain id for this run, so runs side by side never hear each other."""
    folder = Path(tempfile.gettempdir())
    start = os.getpid() % len(_DOMAINS)
    for offset in range(len(_DOMAINS)):
        domain = _DOMAINS[(start + offset) % len(_DOMAINS)]
        fd = _open_lock(folder / f"canet_ros_test_domain_{domain}.lock")
        if fd is None:  # as good as taken
            continue
        handle = open(fd, "rb")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError(
        f"no ROS domain id {_DOMAINS[0]}..{_DOMAINS[-1]} is free for this test run: each "
        f"one's lock file in {folder} (canet_ros_test_domain_<id>.lock) is held by another "
        "run or cannot be opened by this user")


@pytest.fixture(scope="session", autouse=True)
def ros_isolation(tmp_path_factory):
    """Set before any rclpy.init, here and in every process the tests start."""
    domain, handle = _claim_domain()
    patch = pytest.MonkeyPatch()
    patch.setenv("ROS_DOMAIN_ID", str(domain))
    patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    patch.delenv("ROS_LOCALHOST_ONLY", raising=False)  # deprecated spelling; would warn
    # The log files of rclpy here, of every node process and of launch go to the run's
    # temporary folder, not the user's ~/.ros/log.
    ros_home = tmp_path_factory.mktemp("ros_home")
    patch.setenv("ROS_HOME", str(ros_home))
    patch.setenv("ROS_LOG_DIR", str(ros_home / "log"))
    yield domain
    patch.undo()
    handle.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Return a seeded checkpoint, made once per module: the node tests' model."""
    from ros_helpers import seeded_checkpoint
    return seeded_checkpoint(tmp_path_factory.mktemp("ckpt") / "seeded.pt")


@pytest.fixture
def rig(ros, seeded):
    """Nodes and a probe on ``seeded`` in one executor (ros_helpers.Rig), closed after."""
    from ros_helpers import Rig
    rig = Rig(seeded)
    yield rig
    rig.close()


@pytest.fixture(scope="session")
def ros(ros_isolation):
    """rclpy, initialised once for the whole run (skips the test where it is missing)."""
    rclpy = pytest.importorskip(
        "rclpy", reason="rclpy is not installed: bash tools/bootstrap.sh installs the ROS 2 "
                        "wheels the node tests run on")
    from rclpy.signals import SignalHandlerOptions

    # No rclpy signal handlers in pytest: Ctrl-C must stay pytest's.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    yield rclpy
    rclpy.try_shutdown()


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("onnx_cache")
    patch.setenv("CANET_ROS_CACHE", str(cache))
    yield cache
    patch.undo()


@pytest.fixture(scope="module")
def one_torch_thread():
    # On a shared 2-core machine, spinning OpenMP workers make torch up to 10x slower
    # under load (docs/performance.md). Results do not depend on the thread count.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def numba_import_fails(monkeypatch):
    """``import numba`` fails as numba < 0.57 does without pkg_resources (setuptools >= 81)."""
    from canet_ros.inference import kernels

    real_import = builtins.__import__

    def needs_pkg_resources(name, *args, **kwargs):
        if name == "numba":
            raise ModuleNotFoundError("No module named 'pkg_resources'", name="pkg_resources")
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(builtins, "__import__", needs_pkg_resources)
    kernels._numba.cache_clear()  # forget what an earlier import found, now and after
    yield
    monkeypatch.undo()
    kernels._numba.cache_clear()


@pytest.fixture(params=["opencv", "numba"])
def cpu_loops(request, monkeypatch):
    """Run a test on both CPU frame paths: OpenCV/numpy, and the numba loops (``kernels``)."""
    from canet_ros.inference import kernels

    if request.param == "opencv":
        monkeypatch.setenv(kernels.ENV, "0")
    else:
        monkeypatch.delenv(kernels.ENV, raising=False)
        if not kernels.available():
            pytest.skip("numba is not installed (the optional extra canet_ros[numba])")
    return request.param


@pytest.fixture
def small_tmpfs(tmp_path):
    """Return ``mount(size)``: a new folder on a tmpfs of ``size`` ("4m", "64k"); a full disk.

    Every mount is undone after the test; the test skips where mounting is not permitted
    (not root, not Linux, a container without the capability).
    """
    import subprocess

    mounted = []

    def mount(size: str) -> Path:
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root on Linux")
        disk = tmp_path / f"tmpfs{len(mounted)}"
        disk.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(disk)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"mount not permitted here: {done.stderr.strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", str(disk)], check=False)

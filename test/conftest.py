"""Shared pytest setup.

The rclpy stand-in is used only where the real rclpy is missing; ONNX exports go to a
per-run folder, never the user's cache; torch-heavy modules can ask for one thread.
"""
import sys
from pathlib import Path

import pytest

try:
    import rclpy  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_standin"))


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

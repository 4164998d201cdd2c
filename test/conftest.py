"""Shared pytest setup: use the rclpy stand-in only where the real rclpy is missing."""
import sys
from pathlib import Path

try:
    import rclpy  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_standin"))

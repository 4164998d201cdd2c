"""rclpy.logging stand-in."""
from rclpy.impl.rcutils_logger import LoggingSeverity, RcutilsLogger

__all__ = ["LoggingSeverity", "get_logger"]


def get_logger(name):
    if not name:
        raise ValueError("Logger name must not be empty.")
    return RcutilsLogger(name)

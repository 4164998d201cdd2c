"""rclpy.utilities stand-in: the default context and ok/shutdown helpers."""
import threading

from rclpy.context import Context

_lock = threading.Lock()
_default_context = None


def get_default_context(*, shutting_down=False):
    """Return the global context; a shut-down one is replaced, as rclpy does."""
    global _default_context
    with _lock:
        if _default_context is None:
            _default_context = Context()
        context = _default_context
        if shutting_down:
            _default_context = None
        return context


def remove_ros_args(args=None):
    kept, in_ros = [], False
    for token in args or []:
        if token == "--ros-args":
            in_ros = True
        elif token == "--" and in_ros:
            in_ros = False
        elif not in_ros:
            kept.append(token)
    return kept


def ok(*, context=None):
    return (get_default_context() if context is None else context).ok()


def shutdown(*, context=None):
    (get_default_context(shutting_down=True) if context is None else context).shutdown()


def try_shutdown(*, context=None):
    if context is None:
        context = get_default_context(shutting_down=True)
    context.try_shutdown()

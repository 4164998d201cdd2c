"""RcutilsLogger stand-in, keeping the real logger's per-call-site rules.

rclpy remembers each call site (function, file, line) the first time it logs and
raises ValueError if a later call from the same site changes the severity or the
filter keywords (throttle_duration_sec, skip_first, once). Code that funnels several
kinds of messages through one helper line breaks on a real robot, so it must break
here too.
"""
import sys
import threading
import time
from enum import IntEnum


class LoggingSeverity(IntEnum):
    UNSET = 0
    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40
    FATAL = 50


_FILTER_KEYS = ("throttle_duration_sec", "throttle_time_source_type", "skip_first", "once")

# Test-only: (logger name, severity, message) of everything that was emitted.
_standin_records = []
_standin_lock = threading.Lock()


def _caller_id():
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None:
        return ("<unknown>", "<unknown>", 0)
    return (frame.f_code.co_name, frame.f_code.co_filename, frame.f_lineno)


class RcutilsLogger:
    def __init__(self, name=""):
        self.name = name
        self.contexts = {}
        self._level = LoggingSeverity.INFO

    def get_child(self, name):
        if not name:
            raise ValueError("Child logger name must not be empty.")
        return RcutilsLogger(f"{self.name}.{name}" if self.name else name)

    def set_level(self, level):
        self._level = LoggingSeverity(level)

    def get_effective_level(self):
        return self._level

    def is_enabled_for(self, severity):
        return LoggingSeverity(severity) >= self._level

    def _passes_filters(self, context):
        if context.get("once"):
            if context.get("has_logged"):
                return False
            context["has_logged"] = True
        if context.get("skip_first") and not context.get("first_skipped"):
            context["first_skipped"] = True
            return False
        period = context.get("throttle_duration_sec")
        if period:
            now = time.monotonic_ns()
            if context["throttle_last_logged"] and \
                    now < context["throttle_last_logged"] + period * 1e9:
                return False
            context["throttle_last_logged"] = now
        return True

    def log(self, message, severity, **kwargs):
        if not self.is_enabled_for(severity):
            return False
        severity = LoggingSeverity(severity)
        name = kwargs.pop("name", self.name)
        unknown = [k for k in kwargs if k not in _FILTER_KEYS]
        if unknown:
            raise TypeError(f"parameters {unknown} are not used by any logging filter")
        filters = {k: v for k, v in kwargs.items() if v is not None}
        caller = _caller_id()
        context = self.contexts.get(caller)
        if context is None:
            context = {"name": name, "severity": severity, "filters": dict(filters),
                       "throttle_last_logged": 0, **filters}
            self.contexts[caller] = context
        else:
            if severity != context["severity"]:
                raise ValueError("Logger severity cannot be changed between calls.")
            if name != context["name"]:
                raise ValueError("Logger name cannot be changed between calls.")
            if filters != context["filters"]:
                raise ValueError("Requested logging filters cannot be changed between calls.")
        if not self._passes_filters(context):
            return False
        level = "WARN" if severity == LoggingSeverity.WARN else severity.name
        print(f"[{level}] [{time.time():.9f}] [{name}]: {message}", file=sys.stderr)
        with _standin_lock:
            _standin_records.append((name, severity, str(message)))
        return True

    def debug(self, message, **kwargs):
        return self.log(message, LoggingSeverity.DEBUG, **kwargs)

    def info(self, message, **kwargs):
        return self.log(message, LoggingSeverity.INFO, **kwargs)

    def warning(self, message, **kwargs):
        return self.log(message, LoggingSeverity.WARN, **kwargs)

    def warn(self, message, **kwargs):
        """Log at WARN; deprecated in rclpy in favour of warning(), kept as rclpy keeps it."""
        return self.warning(message, **kwargs)

    def error(self, message, **kwargs):
        return self.log(message, LoggingSeverity.ERROR, **kwargs)

    def fatal(self, message, **kwargs):
        return self.log(message, LoggingSeverity.FATAL, **kwargs)

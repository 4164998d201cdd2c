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

"""The package's Python ``logging`` records, in the node's ROS log.

The engine (``canet_ros.inference`` and the rest) logs through Python's ``logging``.
A ROS process configures no Python handler and leaves the root logger at WARNING, so
its INFO lines (what ``precision: auto`` chose and how to make the int8 graph) were
lost, and its warnings reached stderr bare: no severity, no node name, not on
/rosout. While a node runs, one handler on the ``canet_ros`` logger hands every record
to that node's rclpy logger at the matching severity instead. With several nodes in one
process, a record goes to the node whose thread made it (the one constructing it, or its
worker), else to the newest node: nodes started in parallel threads keep their lines.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Optional, Tuple

from rclpy.logging import LoggingSeverity

PACKAGE_LOGGER = "canet_ros"
# The node's own log level (--log-level, or set before it starts) decides what passes.
_PYTHON_LEVELS = {LoggingSeverity.DEBUG: logging.DEBUG, LoggingSeverity.INFO: logging.INFO,
                  LoggingSeverity.WARN: logging.WARNING, LoggingSeverity.ERROR: logging.ERROR,
                  LoggingSeverity.FATAL: logging.CRITICAL}


def python_level(ros_logger: Any) -> int:
    """Return the Python level that lets through what ``ros_logger`` would print."""
    return _PYTHON_LEVELS.get(ros_logger.get_effective_level(), logging.INFO)


class RosLogHandler(logging.Handler):
    """Hands each record to its thread's node's rclpy logger, else the newest node's."""

    def __init__(self) -> None:
        super().__init__()
        self.loggers: List[Any] = []
        self.threads: Dict[int, Any] = {}  # thread ident -> the rclpy logger it works for

    def emit(self, record: logging.LogRecord) -> None:
        logger = self.threads.get(record.thread) if record.thread is not None else None
        if logger is None:
            try:
                logger = self.loggers[-1]
            except IndexError:  # the last node stopped meanwhile (another thread's record)
                return
        try:
            text = self.format(record)
            level = record.levelno
            # One call site per severity: rclpy keeps a context per calling line and
            # raises ValueError when one line logs at a second severity.
            if level >= logging.CRITICAL:
                logger.fatal(text)
            elif level >= logging.ERROR:
                logger.error(text)
            elif level >= logging.WARNING:
                logger.warning(text)
            elif level >= logging.INFO:
                logger.info(text)
            else:
                logger.debug(text)
        except Exception:  # logging must never break the caller (a frame, start-up)
            self.handleError(record)


class LogForwarding:
    """Attaches the handler for the first node of a process, and removes it after the last.

    Several nodes in one process (tests, a composed process) share the one handler, so
    a record is logged once, by the newest node still running.
    """

    def __init__(self) -> None:
        self.handler = RosLogHandler()
        self._lock = threading.Lock()
        self._saved: Optional[Tuple[int, bool]] = None  # the logger's level and propagate

    def attach(self, ros_logger: Any) -> None:
        """Forward records to ``ros_logger``; the calling thread's until :meth:`release`."""
        python_logger = logging.getLogger(PACKAGE_LOGGER)
        with self._lock:
            if not self.handler.loggers:
                self._saved = (python_logger.level, python_logger.propagate)
                python_logger.addHandler(self.handler)
                # The ROS log prints the records now; propagating would print them again
                # wherever the root logger has a handler (logging.basicConfig, pytest).
                python_logger.propagate = False
            self.handler.loggers.append(ros_logger)
            self.handler.threads[threading.get_ident()] = ros_logger
            python_logger.setLevel(python_level(ros_logger))

    def bind(self, ros_logger: Any) -> None:
        """Send the calling thread's records to ``ros_logger`` (an attached node's worker)."""
        with self._lock:
            if any(logger is ros_logger for logger in self.handler.loggers):
                self.handler.threads[threading.get_ident()] = ros_logger

    def release(self, ros_logger: Any) -> None:
        """Stop tying the calling thread to ``ros_logger`` (its node has started)."""
        with self._lock:
            if self.handler.threads.get(threading.get_ident()) is ros_logger:
                del self.handler.threads[threading.get_ident()]

    def detach(self, ros_logger: Any) -> None:
        python_logger = logging.getLogger(PACKAGE_LOGGER)
        with self._lock:
            loggers = self.handler.loggers
            mine = [i for i, logger in enumerate(loggers) if logger is ros_logger]
            if not mine:
                return
            del loggers[mine[-1]]
            if not mine[:-1]:  # its last attachment: no thread works for it any more
                threads = self.handler.threads
                for ident in [i for i, logger in threads.items() if logger is ros_logger]:
                    del threads[ident]
            if loggers:
                python_logger.setLevel(python_level(loggers[-1]))
                return
            python_logger.removeHandler(self.handler)
            if self._saved is not None:
                python_logger.setLevel(self._saved[0])
                python_logger.propagate = self._saved[1]
                self._saved = None


FORWARDING = LogForwarding()

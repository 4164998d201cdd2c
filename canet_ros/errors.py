"""Error types for problems with what the user gave (a file, an argument, a dataset).

This module imports nothing heavy, so the command line can name these types without
loading torch. ``canet`` reports any ``CanetError`` as one line and exit status 1.
"""
from __future__ import annotations

__all__ = ["CanetError", "DatasetError"]


class CanetError(Exception):
    """A problem with the user's input; the message names the file or argument and the problem."""


class DatasetError(CanetError, RuntimeError):
    """A dataset that cannot be read; the message names the folder or file."""

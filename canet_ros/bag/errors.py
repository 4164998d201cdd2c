"""The one error type of the offline bag tool."""
from __future__ import annotations

from ..errors import CanetError


class BagError(CanetError, RuntimeError):
    """A problem with an input bag, an output folder or the run; the message names the file."""

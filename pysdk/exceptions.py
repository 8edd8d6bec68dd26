"""Exceptions, under the module name Restate uses (`restate.exceptions`)."""
from ._errors import TerminalError

__all__ = ["TerminalError"]

"""Exceptions, under the module name Restate uses (`restate.exceptions`)."""
from ._errors import RetryableError, SdkInternalBaseException, TerminalError, is_internal_exception

__all__ = ["RetryableError", "SdkInternalBaseException", "TerminalError", "is_internal_exception"]

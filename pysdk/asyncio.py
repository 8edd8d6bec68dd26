"""Combinators over durable futures, under the module name Restate uses (`restate.asyncio`)."""
from ._combinators import as_completed, gather, select, wait_completed

__all__ = ["as_completed", "gather", "select", "wait_completed"]

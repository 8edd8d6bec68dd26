"""Context types, under the module name Restate uses (`restate.context`)."""
from ._context import Context, ObjectContext, ObjectSharedContext, Request
from ._retry import RunOptions

__all__ = ["Context", "ObjectContext", "ObjectSharedContext", "Request", "RunOptions"]

"""Deployments: an App's handlers served over gRPC to a remote Stead runtime.

`server` (the process: `serve`, `main`), `stream` (one attempt over one Invoke
stream), `discovery` (what the deployment serves), `convert` (tuples <-> messages,
shared with the runtime's side).
"""
from .discovery import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]

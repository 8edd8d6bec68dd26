"""Deployments: an App's handlers served over gRPC to a remote Stead runtime.

`server` (the process: `serve`, `main`), `stream` (one attempt over one Invoke
stream), `discovery` (what the deployment serves), `convert` (tuples <-> messages,
shared with the runtime's side), `wire` (strict decoding: garbage is a
`MalformedMessage`, never a half-parsed message), `codec` (faster encoding of the
protocol's messages, applied here so that both sides have it).
"""
from .._proto.stead.deployment import v1 as _pb
from .codec import direct_defaults
from .discovery import PROTOCOL_VERSION

direct_defaults(_pb)

__all__ = ["PROTOCOL_VERSION"]

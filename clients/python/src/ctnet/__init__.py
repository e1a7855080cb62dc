"""Python client for ctnet (the ctnet.v1 gRPC API).

    import ctnet
    with ctnet.connect_unix("/run/ctnet/ctnet.sock") as c:
        net = c.create_network("web", subnet="172.31.5.0/24")
        sb = c.create_sandbox("a", networks=["web"], publish=["8080:80"])

`ctnet.v1.ctnet_pb2` holds the generated messages; every RPC error is raised
as a `ctnet.CtnetError` subclass carrying the gRPC code and the server's
message.
"""
from ctnet.client import Client, connect_tls, connect_unix
from ctnet.errors import (
    AlreadyExists,
    CtnetError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from ctnet.v1 import ctnet_pb2 as pb

__all__ = [
    "AlreadyExists",
    "Client",
    "CtnetError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "connect_tls",
    "connect_unix",
    "pb",
]

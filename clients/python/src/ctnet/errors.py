"""gRPC errors as exceptions: one class per code ctnet uses."""
import grpc


class CtnetError(Exception):
    """A ctnet call failed. `code` is the grpc.StatusCode, `message` the
    server's text (it names the field or the resource to fix)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgument(CtnetError):
    pass


class NotFound(CtnetError):
    pass


class AlreadyExists(CtnetError):
    pass


class FailedPrecondition(CtnetError):
    pass


class PermissionDenied(CtnetError):
    pass


class Unauthenticated(CtnetError):
    pass


class ResourceExhausted(CtnetError):
    pass


class Unavailable(CtnetError):
    pass


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def from_rpc_error(e: grpc.RpcError) -> CtnetError:
    """The exception for a failed call (CtnetError itself for other codes)."""
    code = e.code()
    return _BY_CODE.get(code, CtnetError)(code, e.details() or "")

"""Exception types of rbe_edge."""


class RbeError(Exception):
    """Base class of the errors that rbe_edge raises on its own."""


class NativeError(RbeError, RuntimeError):
    """A C core call returned a failure status.

    Attributes:
        status: the rbe_status code.
        operation: the C function or SDK step that failed.
    """

    def __init__(self, operation: str, status: int, message: str):
        super().__init__(f"{operation} failed: {message} (rbe_status {status})")
        self.operation = operation
        self.status = status

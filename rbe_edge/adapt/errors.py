"""Exception types of the adaptation loop."""
from rbe_edge.errors import RbeError


class AdaptError(RbeError, ValueError):
    """Adaptation cannot start or continue: bad data, names, options or bundle.

    Raised before any state changes; the message names the input, tensor or
    file at fault and what to do about it.
    """


"""The error every room raises for a value it cannot use as given."""

from __future__ import annotations

__all__ = ["RequestError"]


class RequestError(ValueError):
    """A request that cannot be run as given; the message names the field and the fix.

    Also raised when a name of the vocabulary (a control kind, a sampler) is not known, so
    that a caller reading a file or a command line catches one error for both.
    """

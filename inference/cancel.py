"""A cancel flag the GUI thread sets and the engine checks every step (no torch)."""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["CancelFlag", "CancelToken"]


class CancelFlag(Protocol):
    """Anything with ``is_set()``: a :class:`CancelToken` or a ``threading.Event``."""

    def is_set(self) -> bool: ...


class CancelToken:
    """Thread-safe, one-way cancel flag for one run (make a new one per request)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    set = cancel  # threading.Event compatible

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

"""A tiny observer mechanism: the document model is evented, views subscribe (no Qt here)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")


class Emitter(Generic[E]):
    """Calls every connected callback with each emitted event, in connection order.

    A failing listener is logged and does not stop the others: a broken view must never
    corrupt the document.
    """

    def __init__(self) -> None:
        self._listeners: list[Callable[[E], None]] = []
        self._blocked = 0

    def connect(self, callback: Callable[[E], None]) -> Callable[[E], None]:
        self._listeners.append(callback)
        return callback

    def disconnect(self, callback: Callable[[E], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def emit(self, event: E) -> None:
        if self._blocked:
            return
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a listener's bug must not break the model
                log.exception("document listener %r failed on %r", callback, event)

    def block(self) -> _Blocker:
        """Context manager that mutes the emitter (used while loading a file)."""
        return _Blocker(self)


class _Blocker:
    def __init__(self, emitter: Emitter[Any]) -> None:
        self._emitter = emitter

    def __enter__(self) -> None:
        self._emitter._blocked += 1

    def __exit__(self, *exc: object) -> None:
        self._emitter._blocked -= 1

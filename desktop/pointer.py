"""What passes between the canvas view and the tools: the pointer sample a tool receives,
and the small interfaces each side sees of the other.

The view (:mod:`~sfumato.desktop.canvas_view`) and the tools (:mod:`~sfumato.desktop.tools`)
both import this module and never each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QTransform


@dataclass(frozen=True)
class PointerEvent:
    """A pointer sample in document space.

    ``x``/``y`` are document pixels (floats, sub-pixel); ``pressure`` is 0..1 (1.0 for a
    mouse); ``t`` is seconds on a monotonic clock; ``button`` is the Qt button pressed
    (NoButton on moves); ``modifiers`` the keyboard modifiers; ``tablet`` tells whether a
    pen produced it.
    """

    x: float
    y: float
    pressure: float = 1.0
    t: float = 0.0
    button: Qt.MouseButton = Qt.MouseButton.NoButton
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
    tablet: bool = False
    eraser: bool = False  # the pen's eraser end


class DocumentSpace(Protocol):
    """What a tool drawing its transient shapes may ask of the view."""

    def document_transform(self) -> QTransform:
        """Document pixels → widget (logical) coordinates, where the painter draws."""
        ...


class CanvasTool(Protocol):
    """What the view needs from a tool (:class:`~sfumato.desktop.tools.Tool` is one)."""

    def press(self, ev: PointerEvent) -> None: ...

    def move(self, ev: PointerEvent) -> None: ...

    def release(self, ev: PointerEvent) -> None: ...

    def cancel(self) -> bool:
        """Abort what is in progress; True when something was cancelled."""
        ...

    def outline_radius(self) -> float | None:
        """Radius in document pixels of the brush outline to show, or None for none."""
        ...

    def cursor_shape(self) -> Qt.CursorShape: ...

    def paint_overlay(self, painter: QPainter, view: DocumentSpace) -> None: ...


class ToolProvider(Protocol):
    """Which tool the pointer drives now (the window's ``ToolController``)."""

    def active_tool(self) -> CanvasTool | None: ...

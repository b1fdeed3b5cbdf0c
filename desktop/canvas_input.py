"""Input on the canvas: mouse, pen (with pressure), wheel, gestures and keys become tool
events in document space, or pans and zooms of the view.

- A drag belongs to the device that began it: pen input is accepted, so Qt does not
  synthesise mouse events from it, and mouse events are ignored while a pen stroke is open.
- The middle button, or the left button with Space held, pans; the wheel zooms about the
  pointer; a two-finger trackpad scroll pans; a pinch zooms; a smart-zoom gesture fits.
- Esc aborts the drag in progress, else whatever the tool has pending; with nothing to
  cancel it is the window's (``on_cancel``).
- A tool that raises aborts its interaction and its message goes to ``on_tool_failed``:
  an exception escaping into Qt's event dispatch can crash the process.

Positions arriving here are widget (logical) coordinates; tools receive
:class:`~sfumato.desktop.pointer.PointerEvent` s in document pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import (
    QKeyEvent,
    QMouseEvent,
    QNativeGestureEvent,
    QPointingDevice,
    QTabletEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QGestureEvent, QPinchGesture
from sfumato.canvas.model.document import Document
from sfumato.desktop.pointer import CanvasTool, PointerEvent
from sfumato.desktop.viewport import Viewport

log = logging.getLogger(__name__)


class InputHost(Protocol):
    """What the input handler asks of the canvas widget (positions in widget coordinates)."""

    @property
    def viewport(self) -> Viewport: ...

    @property
    def document(self) -> Document | None: ...

    def active_tool(self) -> CanvasTool | None: ...

    def pan_by(self, dx: float, dy: float) -> None: ...

    def zoom_to(self, zoom: float, anchor: QPointF | None = None) -> None: ...

    def zoom_by_steps(self, steps: float, anchor: QPointF | None = None) -> None: ...

    def fit(self) -> None: ...

    def mapFromGlobal(self, pos: QPoint, /) -> QPoint: ...  # noqa: N802 - Qt API

    def refresh_cursor(self) -> None:
        """The pan state changed: show the matching cursor."""
        ...

    def pointer_moved(self, pos: QPointF) -> None:
        """The pointer hovers or drags at ``pos``."""
        ...

    def interaction_ended(self, *, drew: bool) -> None:
        """A pan or a tool drag ended (``drew``: a tool drag)."""
        ...


class CanvasInput:
    """Turns the view's Qt input events into tool calls and viewport changes; holds the
    interaction state (pan, Space held, which device is dragging a tool)."""

    def __init__(
        self,
        host: InputHost,
        *,
        on_cancel: Callable[[], None],
        on_tool_failed: Callable[[str], None],
    ) -> None:
        self._host = host
        self._on_cancel = on_cancel
        self._on_tool_failed = on_tool_failed
        self._space_down = False
        self._pan_anchor: QPointF | None = None
        self._stroke_source: str | None = None  # "mouse" | "tablet" while a tool drags

    # -- state the view reads ------------------------------------------------------------
    @property
    def pan_mode(self) -> bool:
        """Space is held or a pan drag is under way: the pointer pans instead of drawing."""
        return self._space_down or self._pan_anchor is not None

    @property
    def panning(self) -> bool:
        """A pan drag is under way."""
        return self._pan_anchor is not None

    @property
    def interacting(self) -> bool:
        """A tool drag or a pan drag is under way."""
        return self._stroke_source is not None or self._pan_anchor is not None

    # -- helpers -------------------------------------------------------------------------
    def _pointer(
        self,
        pos: QPointF,
        pressure: float,
        button: Qt.MouseButton,
        modifiers: Qt.KeyboardModifier,
        tablet: bool,
        eraser: bool = False,
    ) -> PointerEvent:
        x, y = self._host.viewport.to_document(pos.x(), pos.y())
        return PointerEvent(
            x, y, max(0.0, min(1.0, pressure)), time.monotonic(), button, modifiers, tablet, eraser
        )

    def _begin_pan(self, pos: QPointF) -> None:
        self._pan_anchor = QPointF(pos)
        self._host.refresh_cursor()

    def _drag_pan(self, pos: QPointF) -> None:
        assert self._pan_anchor is not None
        delta = pos - self._pan_anchor
        self._pan_anchor = QPointF(pos)
        self._host.pan_by(delta.x(), delta.y())

    def _end_pan(self) -> None:
        self._pan_anchor = None
        self._host.refresh_cursor()
        self._host.interaction_ended(drew=False)

    def _call_tool(self, method: str, ev: PointerEvent) -> None:
        """Run a tool handler; a failure aborts the interaction instead of escaping into
        Qt's event dispatch (an exception in a Qt virtual override can crash the process)."""
        tool = self._host.active_tool()
        if tool is None:
            return
        try:
            getattr(tool, method)(ev)
        except Exception as exc:  # noqa: BLE001 - reported, the document stays consistent
            log.exception("tool %s.%s failed", type(tool).__name__, method)
            self._stroke_source = None
            try:
                tool.cancel()
            except Exception:  # noqa: BLE001
                log.exception("tool cancel failed")
            self._on_tool_failed(f"{type(tool).__name__.removesuffix('Tool')}: {exc}")

    def _tool_press(self, ev: PointerEvent, source: str) -> None:
        if self._host.active_tool() is None or self._host.document is None:
            return
        self._stroke_source = source
        self._call_tool("press", ev)

    def _tool_move(self, ev: PointerEvent) -> None:
        if self._stroke_source is not None:
            self._call_tool("move", ev)

    def _tool_release(self, ev: PointerEvent) -> None:
        self._stroke_source = None
        self._call_tool("release", ev)
        self._host.interaction_ended(drew=True)

    def cancel_interaction(self) -> bool:
        """Abort a drag in progress (Esc); True when there was one."""
        if self._stroke_source is not None:
            tool = self._host.active_tool()
            self._stroke_source = None
            if tool is not None:
                tool.cancel()
            return True
        tool = self._host.active_tool()
        return bool(tool is not None and tool.cancel())

    # -- mouse ---------------------------------------------------------------------------
    def mouse_press(self, event: QMouseEvent) -> None:
        pos = event.position()
        if event.button() == Qt.MouseButton.MiddleButton or (
            self._space_down and event.button() == Qt.MouseButton.LeftButton
        ):
            self._begin_pan(pos)
        elif event.button() == Qt.MouseButton.LeftButton and self._stroke_source is None:
            self._tool_press(
                self._pointer(pos, 1.0, event.button(), event.modifiers(), False), "mouse"
            )
        event.accept()

    def mouse_move(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._pan_anchor is not None:
            self._drag_pan(pos)
        elif self._stroke_source == "mouse":
            self._tool_move(self._pointer(pos, 1.0, Qt.MouseButton.NoButton, event.modifiers(), False))
        self._host.pointer_moved(pos)
        event.accept()

    def mouse_release(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._pan_anchor is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._end_pan()
        elif self._stroke_source == "mouse" and event.button() == Qt.MouseButton.LeftButton:
            self._tool_release(self._pointer(pos, 1.0, event.button(), event.modifiers(), False))
        event.accept()

    # -- tablet --------------------------------------------------------------------------
    def tablet(self, event: QTabletEvent) -> None:
        """Pen input with pressure. Accepting the event stops Qt from synthesising the
        matching mouse event, so a pen stroke is never drawn twice."""
        pos = event.position()
        kind = event.type()
        pressure = float(event.pressure())
        eraser = event.pointerType() == QPointingDevice.PointerType.Eraser
        if kind == QEvent.Type.TabletPress:
            if event.button() == Qt.MouseButton.MiddleButton or self._space_down:
                self._begin_pan(pos)
            elif self._stroke_source is None and event.button() in (
                Qt.MouseButton.LeftButton,
                Qt.MouseButton.NoButton,
            ):
                self._tool_press(
                    self._pointer(
                        pos, pressure, Qt.MouseButton.LeftButton, event.modifiers(), True, eraser
                    ),
                    "tablet",
                )
        elif kind == QEvent.Type.TabletMove:
            if self._pan_anchor is not None:
                self._drag_pan(pos)
            elif self._stroke_source == "tablet":
                self._tool_move(
                    self._pointer(
                        pos, pressure, Qt.MouseButton.NoButton, event.modifiers(), True, eraser
                    )
                )
            self._host.pointer_moved(pos)
        elif kind == QEvent.Type.TabletRelease:
            if self._pan_anchor is not None:
                self._end_pan()
            elif self._stroke_source == "tablet":
                self._tool_release(
                    self._pointer(pos, pressure, event.button(), event.modifiers(), True, eraser)
                )
        event.accept()

    # -- wheel, gestures -----------------------------------------------------------------
    def wheel(self, event: QWheelEvent) -> None:
        pos = event.position()
        pixel = event.pixelDelta()
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not pixel.isNull() and not ctrl and event.phase() != Qt.ScrollPhase.NoScrollPhase:
            self._host.pan_by(pixel.x(), pixel.y())  # two-finger trackpad scroll pans
        else:
            angle = event.angleDelta()
            delta = angle.y() or angle.x()
            if delta:
                self._host.zoom_by_steps(delta / 120.0, pos)
        event.accept()

    def gesture(self, event: QEvent) -> bool:
        """Handle a zoom gesture; False when ``event`` is none (the widget's to handle)."""
        kind = event.type()
        if kind == QEvent.Type.NativeGesture and isinstance(event, QNativeGestureEvent):
            if event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                zoom = self._host.viewport.zoom * (1.0 + event.value())
                self._host.zoom_to(zoom, event.position())
                return True
            if event.gestureType() == Qt.NativeGestureType.SmartZoomNativeGesture:
                self._host.fit()
                return True
        if kind == QEvent.Type.Gesture and isinstance(event, QGestureEvent):
            gesture = event.gesture(Qt.GestureType.PinchGesture)
            if isinstance(gesture, QPinchGesture):
                center = self._host.mapFromGlobal(gesture.centerPoint().toPoint())
                zoom = self._host.viewport.zoom * gesture.scaleFactor()
                self._host.zoom_to(zoom, QPointF(center))
                event.accept()
                return True
        return False

    # -- keys ----------------------------------------------------------------------------
    def key_press(self, event: QKeyEvent) -> bool:
        """Space (hold to pan) and Esc; False for other keys (the widget's to handle)."""
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_down = True
                self._host.refresh_cursor()
            event.accept()
            return True
        if event.key() == Qt.Key.Key_Escape:
            if not self.cancel_interaction():
                self._on_cancel()
            event.accept()
            return True
        return False

    def key_release(self, event: QKeyEvent) -> bool:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._host.refresh_cursor()
            event.accept()
            return True
        return False

    def focus_lost(self) -> None:
        self._space_down = False

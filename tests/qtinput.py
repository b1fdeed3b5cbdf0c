"""Synthetic pointer input for window tests: mouse drags, pen (tablet) strokes with
pressure, wheel and pinch events, delivered straight to a widget."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import (
    QInputDevice,
    QMouseEvent,
    QNativeGestureEvent,
    QPointingDevice,
    QTabletEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QWidget

_PEN: QPointingDevice | None = None
_ERASER: QPointingDevice | None = None
_TOUCHPAD: QPointingDevice | None = None


def pen_device() -> QPointingDevice:
    global _PEN
    if _PEN is None:
        _PEN = QPointingDevice(
            "test pen",
            4242,
            QInputDevice.DeviceType.Stylus,
            QPointingDevice.PointerType.Pen,
            QInputDevice.Capability.Position | QInputDevice.Capability.Pressure,
            1,
            3,
        )
    return _PEN


def eraser_device() -> QPointingDevice:
    """The pen turned over: its eraser end."""
    global _ERASER
    if _ERASER is None:
        _ERASER = QPointingDevice(
            "test pen eraser",
            4244,
            QInputDevice.DeviceType.Stylus,
            QPointingDevice.PointerType.Eraser,
            QInputDevice.Capability.Position | QInputDevice.Capability.Pressure,
            1,
            3,
        )
    return _ERASER


def touchpad_device() -> QPointingDevice:
    global _TOUCHPAD
    if _TOUCHPAD is None:
        _TOUCHPAD = QPointingDevice(
            "test touchpad",
            4343,
            QInputDevice.DeviceType.TouchPad,
            QPointingDevice.PointerType.Finger,
            QInputDevice.Capability.Position,
            5,
            0,
        )
    return _TOUCHPAD


def send_mouse(
    widget: QWidget,
    kind: QEvent.Type,
    pos: QPointF,
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
    buttons: Qt.MouseButton | None = None,
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> QMouseEvent:
    if buttons is None:
        buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else button
    event = QMouseEvent(
        kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)),
        button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton, buttons, modifiers,
    )
    QApplication.sendEvent(widget, event)
    return event


def mouse_drag(
    widget: QWidget,
    points: Sequence[tuple[float, float]],
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    """Press at the first point, move through the rest, release at the last."""
    first, *rest = [QPointF(x, y) for x, y in points]
    send_mouse(widget, QEvent.Type.MouseButtonPress, first, button, modifiers=modifiers)
    for p in rest:
        send_mouse(widget, QEvent.Type.MouseMove, p, button, buttons=button, modifiers=modifiers)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, rest[-1] if rest else first, button,
               modifiers=modifiers)


def send_tablet(
    widget: QWidget,
    kind: QEvent.Type,
    pos: QPointF,
    pressure: float,
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
    device: QPointingDevice | None = None,
) -> QTabletEvent:
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.TabletRelease else Qt.MouseButton.LeftButton
    if kind == QEvent.Type.TabletMove:
        button = Qt.MouseButton.NoButton
    event = QTabletEvent(
        kind, device or pen_device(), QPointF(pos), widget.mapToGlobal(QPointF(pos)), pressure,
        0.0, 0.0, 0.0, 0.0, 0.0, Qt.KeyboardModifier.NoModifier, button, buttons,
    )
    event.setAccepted(False)
    QApplication.sendEvent(widget, event)
    return event


def pen_stroke(
    widget: QWidget,
    points: Sequence[tuple[float, float]],
    pressure: float,
    device: QPointingDevice | None = None,
) -> list[QTabletEvent]:
    """A pen stroke through ``points`` at constant ``pressure``; returns the events sent."""
    qpoints = [QPointF(x, y) for x, y in points]
    left = Qt.MouseButton.LeftButton
    events = [send_tablet(widget, QEvent.Type.TabletPress, qpoints[0], pressure, left, device)]
    for p in qpoints[1:]:
        events.append(send_tablet(widget, QEvent.Type.TabletMove, p, pressure, left, device))
    events.append(send_tablet(widget, QEvent.Type.TabletRelease, qpoints[-1], 0.0, left, device))
    return events


def send_wheel(widget: QWidget, pos: QPointF, angle_y: int) -> QWheelEvent:
    event = QWheelEvent(
        QPointF(pos), widget.mapToGlobal(QPointF(pos)), QPoint(0, 0), QPoint(0, angle_y),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    QApplication.sendEvent(widget, event)
    return event


def send_pinch(widget: QWidget, pos: QPointF, value: float) -> QNativeGestureEvent:
    """A trackpad pinch step (macOS-style native zoom gesture) of ``value`` (0.1 = +10 %)."""
    event = QNativeGestureEvent(
        Qt.NativeGestureType.ZoomNativeGesture, touchpad_device(), 2, QPointF(pos), QPointF(pos),
        widget.mapToGlobal(QPointF(pos)), value, QPointF(0, 0),
    )
    QApplication.sendEvent(widget, event)
    return event

"""The canvas input handler on its own (no widget): a failing tool and Esc."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent
from sfumato.canvas.model.document import Document
from sfumato.desktop.canvas_input import CanvasInput
from sfumato.desktop.pointer import PointerEvent
from sfumato.desktop.viewport import Viewport


class _BrokenTool:
    """Breaks on its first move; records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def press(self, ev: PointerEvent) -> None:
        self.calls.append("press")

    def move(self, ev: PointerEvent) -> None:
        self.calls.append("move")
        raise ValueError("boom")

    def release(self, ev: PointerEvent) -> None:
        self.calls.append("release")

    def cancel(self) -> bool:
        self.calls.append("cancel")
        return False


class _Host:
    def __init__(self, tool: _BrokenTool) -> None:
        self.tool = tool
        self.viewport = Viewport(zoom=2.0)
        self.document = Document(64, 64)
        self.ended: list[bool] = []

    def active_tool(self) -> _BrokenTool:
        return self.tool

    def pointer_moved(self, pos: QPointF) -> None:
        pass

    def interaction_ended(self, *, drew: bool) -> None:
        self.ended.append(drew)

    def refresh_cursor(self) -> None:
        pass


def _mouse(kind: QEvent.Type, x: float, button: Qt.MouseButton) -> QMouseEvent:
    pos = QPointF(x, 10)
    return QMouseEvent(kind, pos, pos, button, button, Qt.KeyboardModifier.NoModifier)


def _esc() -> QKeyEvent:
    return QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier)


def test_a_failing_tool_aborts_the_drag_and_reports_once(qapp) -> None:  # noqa: ANN001
    tool = _BrokenTool()
    failures: list[str] = []
    cancels: list[bool] = []
    handler = CanvasInput(
        _Host(tool), on_cancel=lambda: cancels.append(True), on_tool_failed=failures.append  # type: ignore[arg-type]
    )
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    handler.mouse_press(_mouse(QEvent.Type.MouseButtonPress, 10, left))
    assert handler.interacting
    handler.mouse_move(_mouse(QEvent.Type.MouseMove, 20, none))
    # The tool is cancelled, the message names it, and the drag is over: later moves and
    # the release do not reach the tool.
    assert failures == ["_Broken: boom"]
    assert not handler.interacting
    handler.mouse_move(_mouse(QEvent.Type.MouseMove, 30, none))
    handler.mouse_release(_mouse(QEvent.Type.MouseButtonRelease, 30, left))
    assert tool.calls == ["press", "move", "cancel"]
    # Esc with nothing in progress (the tool cancels nothing) goes to the window.
    assert handler.key_press(_esc())
    assert cancels == [True]


def test_esc_during_a_drag_cancels_the_tool_not_the_window(qapp) -> None:  # noqa: ANN001
    tool = _BrokenTool()
    cancels: list[bool] = []
    host = _Host(tool)
    handler = CanvasInput(host, on_cancel=lambda: cancels.append(True), on_tool_failed=print)  # type: ignore[arg-type]
    handler.mouse_press(_mouse(QEvent.Type.MouseButtonPress, 10, Qt.MouseButton.LeftButton))
    assert handler.key_press(_esc())
    assert tool.calls == ["press", "cancel"] and cancels == []
    assert not handler.interacting and host.ended == []

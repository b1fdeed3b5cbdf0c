"""Owns one instance of each tool and knows which is active; the bridge between the
canvas view (which asks for the active tool) and the tools (which ask for the document,
the brush settings, and a way to talk to the user).

The Pose tool (:mod:`~sfumato.desktop.pose_tool`) is held apart from the brush panel's
tools: :meth:`set_pose_mode` turns it on, choosing any other tool turns it off."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.desktop.pose_tool import PoseTool
from sfumato.desktop.tool_settings import ToolKind, ToolSettings
from sfumato.desktop.tools import TOOL_CLASSES, Tool

log = logging.getLogger(__name__)


class ToolController(QObject):
    """Implements both ``ToolHost`` (for tools) and ``ToolProvider`` (for the view)."""

    message = Signal(str)
    repaint_requested = Signal(object)  # a document-space Rect, or None for everything
    pose_mode_changed = Signal(bool)

    def __init__(
        self,
        settings: ToolSettings,
        document: Callable[[], Document | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self._document = document
        self._tools: dict[ToolKind, Tool] = {kind: cls(self) for kind, cls in TOOL_CLASSES.items()}
        self.pose_tool = PoseTool(self)
        self._pose_mode = False
        settings.tool_changed.connect(lambda _kind: self.set_pose_mode(False))

    # -- ToolHost ----------------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self._document()

    @property
    def settings(self) -> ToolSettings:
        return self._settings

    def show_message(self, text: str) -> None:
        self.message.emit(text)

    def request_repaint(self, rect: Rect | None = None) -> None:
        self.repaint_requested.emit(rect)

    # -- ToolProvider ------------------------------------------------------------------------
    def active_tool(self) -> Tool | None:
        if self._pose_mode:
            return self.pose_tool
        return self._tools.get(self._settings.tool)

    @property
    def pose_mode(self) -> bool:
        return self._pose_mode

    def set_pose_mode(self, on: bool) -> None:
        """Make the Pose tool the active tool (``on``) or give the brush panel's tool back."""
        if on == self._pose_mode:
            return
        self.pose_tool.cancel()
        self._pose_mode = on
        self.pose_mode_changed.emit(on)
        self.request_repaint()

    def tool(self, kind: ToolKind) -> Tool:
        return self._tools[kind]

    def cancel_all(self) -> None:
        """Abort whatever any tool has in progress (before the document is replaced)."""
        for tool in (*self._tools.values(), self.pose_tool):
            tool.cancel()

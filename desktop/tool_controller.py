"""Owns one instance of each tool and knows which is active; the bridge between the
canvas view (which asks for the active tool) and the tools (which ask for the document,
the brush settings, and a way to talk to the user)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.desktop.tool_settings import ToolKind, ToolSettings
from sfumato.desktop.tools import TOOL_CLASSES, Tool

log = logging.getLogger(__name__)


class ToolController(QObject):
    """Implements both ``ToolHost`` (for tools) and ``ToolProvider`` (for the view)."""

    message = Signal(str)
    repaint_requested = Signal(object)  # a document-space Rect, or None for everything

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
        return self._tools.get(self._settings.tool)

    def tool(self, kind: ToolKind) -> Tool:
        return self._tools[kind]

    def cancel_all(self) -> None:
        """Abort whatever any tool has in progress (before the document is replaced)."""
        for tool in self._tools.values():
            tool.cancel()

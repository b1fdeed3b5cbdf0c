"""The canvas widget: shows one document, zoomed and panned, with overlays on top.

It ties together the tile cache that draws the document
(:mod:`~sfumato.desktop.canvas_tiles`), the input handler that turns mouse, pen, wheel,
gestures and keys into tool events and pans (:mod:`~sfumato.desktop.canvas_input`), and
the brush outline that follows the pointer.

Coordinates
-----------
Widget coordinates are Qt logical pixels; :class:`~sfumato.desktop.viewport.Viewport`
maps document pixels to them. "100 %" means one document pixel per device pixel.

Overlays
--------
``add_overlay(fn, z)`` registers ``fn(painter, view)``, called on every repaint after
the document is drawn, in ascending ``z``. The painter is in widget coordinates; use
``view.document_transform()`` (a ``QTransform``) or ``view.viewport`` to place things in
document space, and ``view.update_document_rect(rect)`` to ask for a repaint of a
document-space area (e.g. when a preview image changes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QRegion,
    QResizeEvent,
    QTabletEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget
from sfumato.canvas.model.document import Document, DocumentReset, PixelsChanged
from sfumato.canvas.model.geometry import Rect
from sfumato.desktop.canvas_input import CanvasInput
from sfumato.desktop.canvas_tiles import TileCache, TileSource, make_compositor, tile_rect
from sfumato.desktop.pointer import CanvasTool, ToolProvider
from sfumato.desktop.viewport import Viewport, next_zoom_step

log = logging.getLogger(__name__)

OverlayFn = Callable[[QPainter, "CanvasView"], None]

_BACKGROUND = QColor(58, 58, 62)


class CanvasView(QWidget):
    """Shows one document; see the module docstring."""

    viewport_changed = Signal(object)  # Viewport
    cursor_moved = Signal(float, float)  # document coordinates
    cancel_requested = Signal()  # Esc with nothing for the view itself to cancel
    tool_failed = Signal(str)  # a tool raised; the message is for the status bar
    first_painted = Signal()  # once, after the first repaint that drew a document

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # First: Qt delivers events (which the input handler sees) while the widget is set up.
        self._input = CanvasInput(
            self, on_cancel=self.cancel_requested.emit, on_tool_failed=self.tool_failed.emit
        )
        self.setObjectName("canvasView")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setAttribute(Qt.WidgetAttribute.WA_TabletTracking, True)
        self.setAcceptDrops(False)  # the main window handles drops
        self.grabGesture(Qt.GestureType.PinchGesture)
        self.setMinimumSize(200, 150)

        self._document: Document | None = None
        self._compositor: TileSource | None = None
        self._tiles = TileCache()
        self._pending = QRegion()
        self._viewport = Viewport()
        self._fitted = True  # keep fitting on resize until the user zooms or pans
        self._overlays: list[tuple[float, int, OverlayFn]] = []
        self._overlay_seq = 0
        self._tools: ToolProvider | None = None
        self._hover: QPointF | None = None
        self._outline_rect = QRect()
        self._painted_once = False
        self._refit_pending = False
        self._deferred_scheduled = False

    # -- document ------------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self._document

    @property
    def compositor(self) -> TileSource | None:
        return self._compositor

    def set_document(self, document: Document, compositor: TileSource | None = None) -> None:
        """Show ``document`` (a compositor is made unless one is given) and fit it."""
        if self._document is not None:
            self._document.changed.disconnect(self._on_document_event)
            closer = getattr(self._compositor, "close", None)
            if callable(closer):
                closer()
        self._document = document
        self._compositor = compositor if compositor is not None else make_compositor(document)
        self._compositor.take_dirty()
        document.changed.connect(self._on_document_event)
        self._tiles.clear()
        self._tiles.deferred.clear()
        self._fitted = True
        self.fit()  # repaints everything, even when the new document has the old one's size

    def set_overlay_layers(self, shown: bool) -> None:
        """Tint inpaint masks, regions and control layers over the picture (or not)."""
        if self._compositor is not None and hasattr(self._compositor, "overlays"):
            self._compositor.overlays = shown  # marks everything dirty
            self._pull_dirty()

    def _on_document_event(self, event: object) -> None:
        if isinstance(event, DocumentReset):
            self._tiles.clear()
            if self._compositor is not None:
                self._compositor.take_dirty()
            self.update()
            return
        self._pull_dirty()
        if not isinstance(event, PixelsChanged):
            # Structure, visibility, selection: overlays may change too; cheap to repaint.
            self.update()

    def _pull_dirty(self) -> None:
        if self._compositor is None:
            return
        for rect in self._compositor.take_dirty():
            self._tiles.drop(rect)
            self.update_document_rect(rect)

    # -- tools ---------------------------------------------------------------------------
    def set_tool_provider(self, provider: ToolProvider | None) -> None:
        self._tools = provider
        self.refresh_cursor()

    def active_tool(self) -> CanvasTool | None:
        return self._tools.active_tool() if self._tools is not None else None

    def cancel_interaction(self) -> bool:
        """Abort a drag in progress (Esc); True when there was one."""
        return self._input.cancel_interaction()

    # -- viewport ------------------------------------------------------------------------
    @property
    def viewport(self) -> Viewport:
        return self._viewport

    def set_viewport(self, viewport: Viewport, *, user: bool = True) -> None:
        if user:
            self._fitted = False
        if viewport != self._viewport:
            self._viewport = viewport
            self.update()
            self.viewport_changed.emit(viewport)

    def document_transform(self) -> QTransform:
        """Document pixels → widget (logical) coordinates."""
        v = self._viewport
        return QTransform(v.zoom, 0, 0, v.zoom, v.offset_x, v.offset_y)

    def map_to_document(self, pos: QPointF | QPoint) -> tuple[float, float]:
        return self._viewport.to_document(pos.x(), pos.y())

    def map_from_document(self, x: float, y: float) -> QPointF:
        return QPointF(*self._viewport.to_widget(x, y))

    def document_rect_to_widget(self, rect: Rect) -> QRectF:
        x0, y0 = self._viewport.to_widget(rect.x, rect.y)
        x1, y1 = self._viewport.to_widget(rect.x1, rect.y1)
        return QRectF(QPointF(x0, y0), QPointF(x1, y1))

    def update_document_rect(self, rect: Rect) -> None:
        """Schedule a repaint of the widget area showing ``rect`` (document space)."""
        if rect.empty:
            return
        self.update(self.document_rect_to_widget(rect).toAlignedRect().adjusted(-2, -2, 2, 2))

    def fit(self) -> None:
        """Show the whole document, centred, and repaint all of it (also when the viewport
        stays the same: a document replaced by one of the same size must be redrawn)."""
        if self._document is None:
            return
        self.set_viewport(
            Viewport.fit(self._document.width, self._document.height, self.width(), self.height()),
            user=False,
        )
        self._fitted = True
        self.update()

    def actual_pixels(self) -> None:
        """100 %: one document pixel per device pixel, keeping the view centre fixed."""
        self.zoom_to(1.0 / self.devicePixelRatioF())

    def zoom_to(self, zoom: float, anchor: QPointF | None = None) -> None:
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        self.set_viewport(self._viewport.zoomed_at(zoom, anchor.x(), anchor.y()))

    def zoom_by_steps(self, steps: float, anchor: QPointF | None = None) -> None:
        self.zoom_to(next_zoom_step(self._viewport.zoom, steps), anchor)

    def pan_by(self, dx: float, dy: float) -> None:
        self.set_viewport(self._viewport.panned(dx, dy))

    # -- overlays ------------------------------------------------------------------------
    def add_overlay(self, fn: OverlayFn, z: float = 0.0) -> OverlayFn:
        """Draw ``fn(painter, view)`` on top of the document on every repaint (ascending z).

        Returns ``fn`` so it can be passed to :meth:`remove_overlay`.
        """
        self._overlay_seq += 1
        self._overlays.append((z, self._overlay_seq, fn))
        self._overlays.sort(key=lambda item: (item[0], item[1]))
        self.update()
        return fn

    def remove_overlay(self, fn: OverlayFn) -> None:
        self._overlays = [item for item in self._overlays if item[2] is not fn]
        self.update()

    # -- painting ------------------------------------------------------------------------
    def update(self, *args: Any) -> None:  # type: ignore[override]
        """``QWidget.update`` that also remembers the region waiting to be repainted
        (:meth:`repaint_pending` paints exactly what the event loop would)."""
        if not args:
            self._pending = QRegion(self.rect())
        elif len(args) == 1:
            area = args[0]
            self._pending += area if isinstance(area, QRegion) else QRegion(area)
        else:
            self._pending += QRegion(*args)
        if self._pending.rectCount() > 64:  # e.g. while hidden: keep the bookkeeping cheap
            self._pending = QRegion(self._pending.boundingRect())
        super().update(*args)

    def repaint_pending(self) -> None:
        """Synchronously repaint the region scheduled by ``update`` calls (benchmarks)."""
        if not self._pending.isEmpty():
            self.repaint(self._pending)

    def _continue_deferred(self) -> None:
        self._deferred_scheduled = False
        for key in self._tiles.take_deferred():
            self.update_document_rect(tile_rect(key))

    def render_all(self) -> None:
        """Composite every visible tile now (screenshots, benchmarks)."""
        while True:
            self.repaint()
            if not self._tiles.deferred:
                return
            self._continue_deferred()

    def visible_document_rect(self, region: QRect | None = None) -> Rect:
        """The document-space rect visible in ``region`` (widget coords; default: all)."""
        region = region if region is not None else self.rect()
        x0, y0 = self._viewport.to_document(region.left(), region.top())
        x1, y1 = self._viewport.to_document(region.right() + 1, region.bottom() + 1)
        return Rect.from_bounds(
            math.floor(x0) - 1, math.floor(y0) - 1, math.ceil(x1) + 1, math.ceil(y1) + 1
        )

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        self._pull_dirty()
        self._pending -= event.region()
        painter = QPainter(self)
        try:
            painter.fillRect(event.rect(), _BACKGROUND)
            doc = self._document
            if doc is None or self._compositor is None:
                return
            area = doc.rect.intersect(self.visible_document_rect(event.rect()))
            if not area.empty:
                painter.save()
                painter.setClipRect(event.rect())
                centre = self._viewport.to_document(self.width() / 2, self.height() / 2)
                self._tiles.paint(
                    painter, self._compositor, doc.rect, area, self._viewport,
                    self.devicePixelRatioF(), centre,
                )
                painter.restore()
                if self._tiles.deferred and not self._deferred_scheduled:
                    self._deferred_scheduled = True
                    QTimer.singleShot(0, self._continue_deferred)
            for _, _, overlay in self._overlays:
                painter.save()
                try:
                    overlay(painter, self)
                except Exception:  # noqa: BLE001 - a broken overlay must not kill painting
                    log.exception("canvas overlay %r failed", overlay)
                painter.restore()
            tool = self.active_tool()
            if tool is not None:
                painter.save()
                tool.paint_overlay(painter, self)
                painter.restore()
            self._paint_outline(painter)
        finally:
            painter.end()
        if self._document is not None:
            self._tiles.trim(self._document.rect.intersect(self.visible_document_rect()))
        if not self._painted_once and self._document is not None:
            self._painted_once = True
            self.first_painted.emit()

    # -- brush outline and cursor --------------------------------------------------------
    def _outline_widget_rect(self) -> QRect:
        tool = self.active_tool()
        if self._hover is None or tool is None:
            return QRect()
        radius = tool.outline_radius()
        if radius is None:
            return QRect()
        r = max(radius * self._viewport.zoom, 2.0) + 3
        c = self._hover
        return QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _paint_outline(self, painter: QPainter) -> None:
        tool = self.active_tool()
        if self._hover is None or tool is None or self._input.pan_mode:
            return
        radius = tool.outline_radius()
        if radius is None:
            return
        r = max(radius * self._viewport.zoom, 1.5)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0, 160), 1.5))
        painter.drawEllipse(self._hover, r, r)
        painter.setPen(QPen(QColor(255, 255, 255, 200), 0.8))
        painter.drawEllipse(self._hover, r, r)
        # The system cursor is hidden over the canvas: mark the hot spot with a small cross.
        c = self._hover
        painter.setPen(QPen(QColor(0, 0, 0, 200), 1.0))
        painter.drawLine(QPointF(c.x() - 3, c.y()), QPointF(c.x() + 3, c.y()))
        painter.drawLine(QPointF(c.x(), c.y() - 3), QPointF(c.x(), c.y() + 3))

    def _move_outline(self, pos: QPointF | None) -> None:
        old = self._outline_rect
        self._hover = pos
        self._outline_rect = self._outline_widget_rect()
        if not old.isNull():
            self.update(old)
        if not self._outline_rect.isNull():
            self.update(self._outline_rect)

    def refresh_cursor(self) -> None:
        if self._input.pan_mode:
            cursor = (
                Qt.CursorShape.ClosedHandCursor
                if self._input.panning
                else Qt.CursorShape.OpenHandCursor
            )
        else:
            tool = self.active_tool()
            if tool is None:
                cursor = Qt.CursorShape.ArrowCursor
            elif tool.outline_radius() is not None:
                cursor = Qt.CursorShape.BlankCursor  # the outline and a small cross show it
            else:
                cursor = tool.cursor_shape()
        self.setCursor(cursor)
        self._move_outline(self._hover)

    def pointer_moved(self, pos: QPointF) -> None:
        """The pointer is at ``pos`` (widget coordinates): move the outline, report it."""
        self._move_outline(QPointF(pos))
        x, y = self._viewport.to_document(pos.x(), pos.y())
        self.cursor_moved.emit(x, y)

    def interaction_ended(self, *, drew: bool) -> None:
        """A pan or a tool drag ended: a refit a resize put off happens now; after a tool
        drag (``drew``) later resizes keep zoom and centre (the artist is working)."""
        if self._refit_pending:
            self._refit_pending = False
            if self._fitted:
                self.fit()
        if drew:
            self._fitted = False

    # -- Qt events -----------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._input.mouse_press(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._input.mouse_move(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._input.mouse_release(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802
        self._move_outline(None)
        super().leaveEvent(event)

    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
        self._input.tablet(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        self._input.wheel(event)

    def event(self, event: QEvent) -> bool:
        if self._input.gesture(event):
            return True
        # a tool that takes keys (the Pose tool: Delete, M) gets them before the window's
        # shortcuts (Clear Layer, the mask brush)
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and self._tool_wants_key(event)):
            event.accept()
            return True
        return super().event(event)

    def _tool_wants_key(self, event: QKeyEvent) -> bool:
        wants = getattr(self.active_tool(), "wants_key", None)
        return bool(wants is not None and wants(event.key(), event.modifiers()))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if self._tool_wants_key(event):
            tool = self.active_tool()
            if tool is not None and tool.key_press(event.key(), event.modifiers()):  # type: ignore[attr-defined]
                self.update()
                return
        if not self._input.key_press(event):
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self._input.key_release(event):
            super().keyReleaseEvent(event)

    def focusOutEvent(self, event: Any) -> None:  # noqa: N802
        self._input.focus_lost()
        super().focusOutEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        """A freshly opened document stays fitted while the window settles; once the user
        has drawn, zoomed or panned, a resize keeps the zoom and the view's centre. Never
        does the canvas move under a pen or mouse that is drawing (a dock growing
        mid-stroke would shift the stroke): that adjustment waits for the release."""
        interacting = self._input.interacting
        if self._fitted:
            if interacting:
                self._refit_pending = True
            else:
                self.fit()
        elif not interacting and event.oldSize().isValid():
            dx = (event.size().width() - event.oldSize().width()) / 2
            dy = (event.size().height() - event.oldSize().height()) / 2
            self._viewport = self._viewport.panned(dx, dy)
            self.viewport_changed.emit(self._viewport)
        super().resizeEvent(event)

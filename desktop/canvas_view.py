"""The canvas widget: draws the composited document tile by tile, zooms, pans, and feeds
pointer input (mouse and tablet, with pressure) to the active tool.

Drawing
-------
The compositor (:class:`sfumato.canvas.compositor.Compositor`) hands out composited
``TILE``×``TILE`` tiles; this view keeps one ``QImage`` per tile and re-fetches only the
tiles the compositor reports dirty, so a brush dab costs a few tiles, not the stack.
A repaint draws a checkerboard (one textured fill) under the document rectangle, then
one ``drawImage`` per visible tile, then the overlays (preview, selection, tool shapes,
brush outline). The number of painter calls is bounded by the visible tile count.

Coordinates
-----------
Widget coordinates are Qt logical pixels; :class:`~sfumato.desktop.viewport.Viewport`
maps document pixels to them. Tile edges are rounded to *device* pixels
(``devicePixelRatio``) so neighbouring tiles meet without seams on HiDPI screens, and
"100 %" means one document pixel per device pixel.

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
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
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPointingDevice,
    QRegion,
    QResizeEvent,
    QTabletEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QGestureEvent, QPinchGesture, QWidget
from sfumato.canvas.document import Document, DocumentReset, PixelsChanged
from sfumato.canvas.geometry import Rect
from sfumato.canvas.tiles import TILE
from sfumato.desktop.viewport import Viewport, next_zoom_step

if TYPE_CHECKING:
    from sfumato.desktop.tools import Tool

log = logging.getLogger(__name__)

OverlayFn = Callable[[QPainter, "CanvasView"], None]

_CHECKER = 8  # checkerboard square, logical pixels
MAX_CACHED_TILES = 384  # beyond this, tiles off screen are dropped from the cache
FRAME_BUDGET_S = 0.03  # compositing time per repaint before the rest waits a frame
MIN_TILES_PER_FRAME = 4  # always enough for a brush dab's tiles
_BACKGROUND = QColor(58, 58, 62)


class TileSource(Protocol):
    """What the view needs from a compositor."""

    def tile(self, tx: int, ty: int) -> np.ndarray: ...

    def take_dirty(self) -> list[Rect]: ...


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


class ToolProvider(Protocol):
    def active_tool(self) -> Tool | None: ...


def make_compositor(document: Document) -> TileSource:
    """The document's compositor with the AI layers (masks, regions) shown as overlays."""
    from sfumato.canvas.compositor import Compositor

    return Compositor(document, overlays=True)  # type: ignore[return-value]


def tile_to_qimage(pixels: np.ndarray) -> QImage:
    """A composited tile (``(h, w, 4)`` uint8, straight alpha RGBA) as a premultiplied
    ARGB32 QImage (the raster engine's fastest format); the QImage owns its pixels."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    image = QImage(pixels.data, w, h, w * 4, QImage.Format.Format_RGBA8888)
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def _checker_pixmap() -> QPixmap:
    pix = QPixmap(2 * _CHECKER, 2 * _CHECKER)
    pix.fill(QColor(204, 204, 204))
    p = QPainter(pix)
    p.fillRect(0, 0, _CHECKER, _CHECKER, QColor(153, 153, 153))
    p.fillRect(_CHECKER, _CHECKER, _CHECKER, _CHECKER, QColor(153, 153, 153))
    p.end()
    return pix


class CanvasView(QWidget):
    """Shows one document; see the module docstring."""

    viewport_changed = Signal(object)  # Viewport
    cursor_moved = Signal(float, float)  # document coordinates
    cancel_requested = Signal()  # Esc with nothing for the view itself to cancel
    tool_failed = Signal(str)  # a tool raised; the message is for the status bar
    first_painted = Signal()  # once, after the first repaint that drew a document

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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
        self._tiles: dict[tuple[int, int], list[QImage]] = {}  # mip levels per tile
        self._pending = QRegion()
        self._viewport = Viewport()
        self._fitted = True  # keep fitting on resize until the user zooms or pans
        self._overlays: list[tuple[float, int, OverlayFn]] = []
        self._overlay_seq = 0
        self._tools: ToolProvider | None = None
        self._checker = QBrush(_checker_pixmap())

        # Interaction state.
        self._space_down = False
        self._pan_anchor: QPointF | None = None
        self._stroke_source: str | None = None  # "mouse" | "tablet" while a tool drags
        self._hover: QPointF | None = None
        self._outline_rect = QRect()
        self._painted_once = False
        self._refit_pending = False
        self._deferred: set[tuple[int, int]] = set()  # visible tiles not composited yet
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
        self._deferred.clear()
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
            for key in rect.tiles(TILE):
                self._tiles.pop(key, None)
            self.update_document_rect(rect)

    # -- tools ---------------------------------------------------------------------------
    def set_tool_provider(self, provider: ToolProvider | None) -> None:
        self._tools = provider
        self.refresh_cursor()

    def _tool(self) -> Tool | None:
        return self._tools.active_tool() if self._tools is not None else None

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

    def _tile_image(self, key: tuple[int, int], level: int) -> QImage:
        """The composited tile, downscaled by 2**level (a mipmap for zoomed-out views, so
        a repaint scales by at most 2x instead of resampling full tiles)."""
        images = self._tiles.get(key)
        if images is None:
            assert self._compositor is not None
            images = [tile_to_qimage(self._compositor.tile(*key))]
            self._tiles[key] = images
        while len(images) <= level:
            prev = images[-1]
            images.append(prev.scaled(
                max(1, prev.width() // 2), max(1, prev.height() // 2),
                Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation,
            ))
        return images[level]

    def _paint_order(self, area: Rect) -> list[tuple[int, int]]:
        """Tiles of ``area``, those nearest the view's centre first."""
        keys = list(area.tiles(TILE))
        if len(keys) <= MIN_TILES_PER_FRAME:
            return keys
        cx, cy = self._viewport.to_document(self.width() / 2, self.height() / 2)
        return sorted(keys, key=lambda k: (k[0] * TILE + TILE / 2 - cx) ** 2 + (k[1] * TILE + TILE / 2 - cy) ** 2)

    def _continue_deferred(self) -> None:
        self._deferred_scheduled = False
        deferred, self._deferred = self._deferred, set()
        for key in deferred:
            self.update_document_rect(Rect(key[0] * TILE, key[1] * TILE, TILE, TILE))

    def render_all(self) -> None:
        """Composite every visible tile now (screenshots, benchmarks)."""
        while True:
            self.repaint()
            if not self._deferred:
                return
            self._continue_deferred()

    def _device_rect(self, rect: Rect, dpr: float) -> QRectF:
        """Widget rect for a document rect with edges snapped to device pixels."""
        v = self._viewport

        def snap(value: float) -> float:
            return round(value * dpr) / dpr

        x0 = snap(rect.x * v.zoom + v.offset_x)
        y0 = snap(rect.y * v.zoom + v.offset_y)
        x1 = snap(rect.x1 * v.zoom + v.offset_x)
        y1 = snap(rect.y1 * v.zoom + v.offset_y)
        return QRectF(x0, y0, x1 - x0, y1 - y0)

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
            dpr = self.devicePixelRatioF()
            area = doc.rect.intersect(self.visible_document_rect(event.rect()))
            if not area.empty:
                doc_widget = self._device_rect(doc.rect, dpr)
                painter.save()
                painter.setClipRect(event.rect())
                painter.fillRect(doc_widget, self._checker)
                device_zoom = self._viewport.zoom * dpr
                smooth = device_zoom < 1.0
                level = max(0, min(6, int(math.floor(math.log2(1.0 / device_zoom))))) if smooth else 0
                scale = 1.0 / (1 << level)
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
                started = time.perf_counter()
                rendered = 0
                for key in self._paint_order(area):
                    tile_rect = Rect(key[0] * TILE, key[1] * TILE, TILE, TILE).intersect(doc.rect)
                    if key not in self._tiles:
                        # Compositing is the slow part: past the frame budget, leave the
                        # checkerboard and finish in later frames (the GUI stays responsive
                        # while a big document first appears).
                        over_budget = time.perf_counter() - started > FRAME_BUDGET_S
                        if rendered >= MIN_TILES_PER_FRAME and over_budget:
                            self._deferred.add(key)
                            continue
                        rendered += 1
                    image = self._tile_image(key, level)
                    source = QRectF(0, 0, tile_rect.w * scale, tile_rect.h * scale)
                    painter.drawImage(self._device_rect(tile_rect, dpr), image, source)
                painter.restore()
                if self._deferred and not self._deferred_scheduled:
                    self._deferred_scheduled = True
                    QTimer.singleShot(0, self._continue_deferred)
            for _, _, overlay in self._overlays:
                painter.save()
                try:
                    overlay(painter, self)
                except Exception:  # noqa: BLE001 - a broken overlay must not kill painting
                    log.exception("canvas overlay %r failed", overlay)
                painter.restore()
            tool = self._tool()
            if tool is not None:
                painter.save()
                tool.paint_overlay(painter, self)
                painter.restore()
            self._paint_outline(painter)
        finally:
            painter.end()
        if len(self._tiles) > MAX_CACHED_TILES and self._document is not None:
            visible = set(self._document.rect.intersect(self.visible_document_rect()).tiles(TILE))
            self._tiles = {k: v for k, v in self._tiles.items() if k in visible}
        if not self._painted_once and self._document is not None:
            self._painted_once = True
            self.first_painted.emit()

    # -- brush outline -------------------------------------------------------------------
    def _outline_widget_rect(self) -> QRect:
        tool = self._tool()
        if self._hover is None or tool is None:
            return QRect()
        radius = tool.outline_radius()
        if radius is None:
            return QRect()
        r = max(radius * self._viewport.zoom, 2.0) + 3
        c = self._hover
        return QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _paint_outline(self, painter: QPainter) -> None:
        tool = self._tool()
        if self._hover is None or tool is None or self._pan_active():
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
        if self._pan_active():
            cursor = (
                Qt.CursorShape.ClosedHandCursor
                if self._pan_anchor is not None
                else Qt.CursorShape.OpenHandCursor
            )
        else:
            tool = self._tool()
            if tool is None:
                cursor = Qt.CursorShape.ArrowCursor
            elif tool.outline_radius() is not None:
                cursor = Qt.CursorShape.BlankCursor  # the outline and a small cross show it
            else:
                cursor = tool.cursor_shape()
        self.setCursor(cursor)
        self._move_outline(self._hover)

    # -- input: helpers ------------------------------------------------------------------
    def _pan_active(self) -> bool:
        return self._space_down or self._pan_anchor is not None

    def _pointer(
        self,
        pos: QPointF,
        pressure: float,
        button: Qt.MouseButton,
        modifiers: Qt.KeyboardModifier,
        tablet: bool,
        eraser: bool = False,
    ) -> PointerEvent:
        x, y = self._viewport.to_document(pos.x(), pos.y())
        return PointerEvent(
            x, y, max(0.0, min(1.0, pressure)), time.monotonic(), button, modifiers, tablet, eraser
        )

    def _begin_pan(self, pos: QPointF) -> None:
        self._pan_anchor = QPointF(pos)
        self.refresh_cursor()

    def _drag_pan(self, pos: QPointF) -> None:
        assert self._pan_anchor is not None
        delta = pos - self._pan_anchor
        self._pan_anchor = QPointF(pos)
        self.pan_by(delta.x(), delta.y())

    def _end_pan(self) -> None:
        self._pan_anchor = None
        self.refresh_cursor()
        self._after_interaction()

    def _call_tool(self, method: str, ev: PointerEvent) -> None:
        """Run a tool handler; a failure aborts the interaction instead of escaping into
        Qt's event dispatch (an exception in a Qt virtual override can crash the process)."""
        tool = self._tool()
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
            self.tool_failed.emit(f"{type(tool).__name__.removesuffix('Tool')}: {exc}")

    def _tool_press(self, ev: PointerEvent, source: str) -> None:
        if self._tool() is None or self._document is None:
            return
        self._stroke_source = source
        self._call_tool("press", ev)

    def _tool_move(self, ev: PointerEvent) -> None:
        if self._stroke_source is not None:
            self._call_tool("move", ev)

    def _tool_release(self, ev: PointerEvent) -> None:
        self._stroke_source = None
        self._call_tool("release", ev)
        self._after_interaction()
        self._fitted = False  # the artist is working: later resizes keep zoom and centre

    def cancel_interaction(self) -> bool:
        """Abort a drag in progress (Esc); True when there was one."""
        if self._stroke_source is not None:
            tool = self._tool()
            self._stroke_source = None
            if tool is not None:
                tool.cancel()
            return True
        tool = self._tool()
        return bool(tool is not None and tool.cancel())

    # -- input: mouse --------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
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

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._pan_anchor is not None:
            self._drag_pan(pos)
        elif self._stroke_source == "mouse":
            self._tool_move(self._pointer(pos, 1.0, Qt.MouseButton.NoButton, event.modifiers(), False))
        self._after_move(pos)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._pan_anchor is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._end_pan()
        elif self._stroke_source == "mouse" and event.button() == Qt.MouseButton.LeftButton:
            self._tool_release(self._pointer(pos, 1.0, event.button(), event.modifiers(), False))
        event.accept()

    def _after_move(self, pos: QPointF) -> None:
        self._move_outline(QPointF(pos))
        x, y = self._viewport.to_document(pos.x(), pos.y())
        self.cursor_moved.emit(x, y)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802
        self._move_outline(None)
        super().leaveEvent(event)

    # -- input: tablet -------------------------------------------------------------------
    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
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
            self._after_move(pos)
        elif kind == QEvent.Type.TabletRelease:
            if self._pan_anchor is not None:
                self._end_pan()
            elif self._stroke_source == "tablet":
                self._tool_release(
                    self._pointer(pos, pressure, event.button(), event.modifiers(), True, eraser)
                )
        event.accept()

    # -- input: wheel, gestures ----------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        pos = event.position()
        pixel = event.pixelDelta()
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not pixel.isNull() and not ctrl and event.phase() != Qt.ScrollPhase.NoScrollPhase:
            self.pan_by(pixel.x(), pixel.y())  # two-finger trackpad scroll pans
        else:
            angle = event.angleDelta()
            delta = angle.y() or angle.x()
            if delta:
                self.zoom_by_steps(delta / 120.0, pos)
        event.accept()

    def event(self, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.NativeGesture and isinstance(event, QNativeGestureEvent):
            if event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.zoom_to(self._viewport.zoom * (1.0 + event.value()), event.position())
                return True
            if event.gestureType() == Qt.NativeGestureType.SmartZoomNativeGesture:
                self.fit()
                return True
        if kind == QEvent.Type.Gesture and isinstance(event, QGestureEvent):
            gesture = event.gesture(Qt.GestureType.PinchGesture)
            if isinstance(gesture, QPinchGesture):
                center = self.mapFromGlobal(gesture.centerPoint().toPoint())
                self.zoom_to(self._viewport.zoom * gesture.scaleFactor(), QPointF(center))
                event.accept()
                return True
        return super().event(event)

    # -- input: keys ---------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_down = True
                self.refresh_cursor()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape:
            if not self.cancel_interaction():
                self.cancel_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.refresh_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event: Any) -> None:  # noqa: N802
        self._space_down = False
        super().focusOutEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        """A freshly opened document stays fitted while the window settles; once the user
        has drawn, zoomed or panned, a resize keeps the zoom and the view's centre. Never
        does the canvas move under a pen or mouse that is drawing (a dock growing
        mid-stroke would shift the stroke): that adjustment waits for the release."""
        interacting = self._stroke_source is not None or self._pan_anchor is not None
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

    def _after_interaction(self) -> None:
        if self._refit_pending:
            self._refit_pending = False
            if self._fitted:
                self.fit()

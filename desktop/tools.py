"""Canvas tools: small classes that turn document-space pointer events into document edits.

Each tool receives :class:`~sfumato.desktop.pointer.PointerEvent` s (document pixels,
pressure 0..1) from the canvas view through ``press`` / ``move`` / ``release``, and
``cancel`` on Esc. Tools never draw pixels themselves: they call the canvas library
(strokes, fill, selection commands), whose document events make the view repaint. A tool
may draw transient shapes (a selection rectangle being dragged) in ``paint_overlay``.

Every edit is undoable: a stroke is one transaction (begun at pen-down, committed at
pen-up, aborted on Esc); fills, selections and moves are single commands.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF
from sfumato.canvas import editing
from sfumato.canvas.edits.commands import EditError
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.history import HistoryBusyError
from sfumato.canvas.model.layers import Layer, PixelLayer, Role
from sfumato.canvas.paint.brush import Brush, BrushMode, Curve, Stroke
from sfumato.canvas.paint.selection import SelectionOp
from sfumato.desktop.pointer import DocumentSpace, PointerEvent
from sfumato.desktop.tool_settings import BrushValues, ToolKind, ToolSettings

log = logging.getLogger(__name__)

class ToolError(RuntimeError):
    """A tool cannot act; the message tells the user what to do instead."""


class ToolHost(Protocol):
    """What tools need from the window."""

    @property
    def document(self) -> Document | None: ...

    @property
    def settings(self) -> ToolSettings: ...

    def show_message(self, text: str) -> None: ...

    def request_repaint(self, rect: Rect | None = None) -> None:
        """Repaint ``rect`` (document space) of the canvas, or all of it for None."""
        ...


class Tool:
    """Base class: does nothing. ``kind`` says which :class:`ToolKind` it implements."""

    kind: ToolKind = ToolKind.BRUSH

    def __init__(self, host: ToolHost) -> None:
        self.host = host

    @property
    def document(self) -> Document | None:
        return self.host.document

    def press(self, ev: PointerEvent) -> None:
        pass

    def move(self, ev: PointerEvent) -> None:
        pass

    def release(self, ev: PointerEvent) -> None:
        pass

    def cancel(self) -> bool:
        """Abort what is in progress; True when something was cancelled."""
        return False

    def outline_radius(self) -> float | None:
        """Radius in document pixels of the brush outline to show, or None for none."""
        return None

    def cursor_shape(self) -> Qt.CursorShape:
        return Qt.CursorShape.CrossCursor

    def paint_overlay(self, painter: QPainter, view: DocumentSpace) -> None:
        pass


# -- painting --------------------------------------------------------------------------------
def _editable(layer: PixelLayer) -> None:
    if layer.locked or any(g.locked for g in layer.ancestors()):
        raise ToolError(f"Layer {layer.name!r} is locked; unlock it in the Layers dock to paint.")
    if not layer.effectively_visible():
        raise ToolError(f"Layer {layer.name!r} is hidden; show it to paint on it.")


class BrushTool(Tool):
    """Paints the active pixel layer (or erases it when ``erase``)."""

    kind = ToolKind.BRUSH
    erase = False

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._stroke: Stroke | None = None
        self._layer: PixelLayer | None = None
        self._last: tuple[float, float] = (math.nan, math.nan)

    def target_layer(self, doc: Document) -> PixelLayer:
        layer = doc.active
        if not isinstance(layer, PixelLayer):
            raise ToolError("Select a paint layer in the Layers dock to paint on (groups hold no pixels).")
        return layer

    def stroke_color(self, layer: PixelLayer) -> tuple[int, int, int]:
        return self.host.settings.values.color

    def erasing(self, ev: PointerEvent) -> bool:
        return self.erase or ev.eraser

    def brush_mode(self, ev: PointerEvent) -> BrushMode:
        return BrushMode.ERASE if self.erasing(ev) else BrushMode.PAINT

    def make_brush(self, layer: PixelLayer, ev: PointerEvent) -> Brush:
        v = self.host.settings.values
        return Brush(
            size=v.size,
            hardness=v.hardness,
            opacity=v.opacity,
            flow=v.flow,
            color=self.stroke_color(layer),
            mode=self.brush_mode(ev),
            **pressure_curves(v),
        )

    def press(self, ev: PointerEvent) -> None:
        doc = self.document
        if doc is None or self._stroke is not None:
            return
        try:
            layer = self.target_layer(doc)
            _editable(layer)
        except ToolError as exc:
            self.host.show_message(str(exc))
            return
        try:
            self._stroke = Stroke(doc, layer, self.make_brush(layer, ev))
        except (EditError, HistoryBusyError, ValueError) as exc:
            self.host.show_message(str(exc))
            return
        self._layer = layer
        self._last = (ev.x, ev.y)
        self._stroke.add_point(ev.x, ev.y, ev.pressure, ev.t)

    def move(self, ev: PointerEvent) -> None:
        if self._stroke is not None and (ev.x, ev.y) != self._last:
            self._last = (ev.x, ev.y)
            self._stroke.add_point(ev.x, ev.y, ev.pressure, ev.t)

    def release(self, ev: PointerEvent) -> None:
        """Pen-up ends the stroke. The release sample itself is not painted when a pen
        reports it (its pressure is 0 by definition); a mouse release at a new spot is."""
        if self._stroke is None:
            return
        stroke, self._stroke = self._stroke, None
        try:
            if not ev.tablet and (ev.x, ev.y) != self._last:
                stroke.add_point(ev.x, ev.y, ev.pressure, ev.t)
        finally:
            stroke.end()

    def cancel(self) -> bool:
        if self._stroke is None:
            return False
        stroke, self._stroke = self._stroke, None
        stroke.abort()
        return True

    def outline_radius(self) -> float | None:
        return self.host.settings.values.size / 2

    def cursor_shape(self) -> Qt.CursorShape:
        return Qt.CursorShape.CrossCursor


class EraserTool(BrushTool):
    kind = ToolKind.ERASER
    erase = True


def pressure_curves(v: BrushValues) -> dict[str, Any]:
    """Brush keyword arguments for the panel's pressure and smoothing choices."""
    return {
        "size_pressure": Curve.linear(0.1, 1.0) if v.pressure_size else None,
        "opacity_pressure": Curve.linear(0.0, 1.0) if v.pressure_opacity else None,
        "smoothing": v.smoothing,
    }


def _add_role_layer(doc: Document, role: Role, name: str) -> PixelLayer:
    """Add a new layer with ``role`` above the active one (one undoable command)."""
    from sfumato.desktop.layer_actions import add_layer

    layer = add_layer(doc, role, name=name)
    assert isinstance(layer, PixelLayer)
    return layer


class MaskBrushTool(BrushTool):
    """Paints the inpaint mask: the active mask layer, else the topmost one, else a new one.

    Holding Ctrl (or using the pen's eraser end) erases mask coverage.
    """

    kind = ToolKind.MASK

    def target_layer(self, doc: Document) -> PixelLayer:
        active = doc.active
        if isinstance(active, PixelLayer) and active.role is Role.INPAINT_MASK:
            return active
        existing = next(doc.pixel_layers(Role.INPAINT_MASK), None)
        if existing is None:
            existing = _add_role_layer(doc, Role.INPAINT_MASK, "Inpaint mask")
        doc.set_active(existing)
        return existing

    def erasing(self, ev: PointerEvent) -> bool:
        return ev.eraser or bool(ev.modifiers & Qt.KeyboardModifier.ControlModifier)

    def brush_mode(self, ev: PointerEvent) -> BrushMode:
        return BrushMode.ERASE if self.erasing(ev) else BrushMode.MASK

    def make_brush(self, layer: PixelLayer, ev: PointerEvent) -> Brush:
        v = self.host.settings.values
        return Brush(size=v.size, hardness=v.hardness, opacity=1.0, flow=v.flow,
                     mode=self.brush_mode(ev), **pressure_curves(v))


class RegionBrushTool(MaskBrushTool):
    """Paints the active region layer's coverage (a new region layer when none is active)."""

    kind = ToolKind.REGION

    def target_layer(self, doc: Document) -> PixelLayer:
        active = doc.active
        if isinstance(active, PixelLayer) and active.role is Role.REGION:
            return active
        layer = _add_role_layer(doc, Role.REGION, "Region")
        doc.set_active(layer)
        self.host.show_message("Added a region layer; type its prompt in the Layers dock.")
        return layer



# -- fill and picker ---------------------------------------------------------------------------
class FillTool(Tool):
    """Flood-fills the active layer around the clicked pixel with the brush colour
    (contiguous, similar colours within the tolerance; clipped by the selection)."""

    kind = ToolKind.FILL

    def press(self, ev: PointerEvent) -> None:
        doc = self.document
        if doc is None:
            return
        layer = doc.active
        try:
            if not isinstance(layer, PixelLayer):
                raise ToolError("Select a paint layer to fill.")
            _editable(layer)
        except ToolError as exc:
            self.host.show_message(str(exc))
            return
        from sfumato.canvas.paint.fill import flood_fill

        v = self.host.settings.values
        flood_fill(
            doc, layer, ev.x, ev.y, v.color,
            tolerance=v.fill_tolerance / 255.0, opacity=v.opacity,
        )

    def cursor_shape(self) -> Qt.CursorShape:
        return Qt.CursorShape.PointingHandCursor


class PickerTool(Tool):
    """Sets the brush colour from the visible picture under the pointer (drag to sample)."""

    kind = ToolKind.PICKER

    def _pick(self, ev: PointerEvent) -> None:
        doc = self.document
        if doc is None:
            return
        from sfumato.canvas.paint.fill import pick_color

        rgba = pick_color(doc, ev.x, ev.y)
        if rgba is not None and rgba[3] > 0:
            self.host.settings.update(color=(int(rgba[0]), int(rgba[1]), int(rgba[2])))

    def press(self, ev: PointerEvent) -> None:
        self._pick(ev)

    def move(self, ev: PointerEvent) -> None:
        self._pick(ev)


# -- selection ---------------------------------------------------------------------------------
def selection_op(modifiers: Qt.KeyboardModifier) -> SelectionOp:
    """Shift adds, Alt subtracts, Shift+Alt intersects; otherwise the shape replaces."""
    shift = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
    alt = bool(modifiers & Qt.KeyboardModifier.AltModifier)
    if shift and alt:
        return SelectionOp.INTERSECT
    if shift:
        return SelectionOp.ADD
    if alt:
        return SelectionOp.SUBTRACT
    return SelectionOp.REPLACE


class _ShapeSelectTool(Tool):
    """Drag a shape; on release it becomes the selection (see :func:`selection_op`).
    A click without a drag deselects."""

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._points: list[tuple[float, float]] = []
        self._op = SelectionOp.REPLACE
        self._shown = Rect(0, 0, 0, 0)

    def press(self, ev: PointerEvent) -> None:
        self._points = [(ev.x, ev.y)]
        self._op = selection_op(ev.modifiers)
        self._shown = self._bounds()

    def move(self, ev: PointerEvent) -> None:
        if self._points:
            self._add(ev)
            self._repaint_shape()

    def _bounds(self) -> Rect:
        """Document-space bounds of the shape being dragged (a pixel of slack)."""
        if not self._points:
            return Rect(0, 0, 0, 0)
        xs = [p[0] for p in self._points]
        ys = [p[1] for p in self._points]
        return Rect.from_bounds(
            math.floor(min(xs)) - 1, math.floor(min(ys)) - 1, math.ceil(max(xs)) + 2, math.ceil(max(ys)) + 2
        )

    def _repaint_shape(self) -> None:
        """Repaint where the shape was and where it is now, not the whole canvas."""
        now = self._bounds()
        self.host.request_repaint(self._shown.union(now))
        self._shown = now

    def _add(self, ev: PointerEvent) -> None:
        if len(self._points) == 1:
            self._points.append((ev.x, ev.y))
        else:
            self._points[-1] = (ev.x, ev.y)

    def release(self, ev: PointerEvent) -> None:
        if not self._points:
            return
        self._add(ev)
        points, self._points = self._points, []
        doc = self.document
        self._repaint_shape()
        if doc is None:
            return
        from sfumato.canvas.paint import selection

        if not self.select(doc, points, self._op) and self._op is SelectionOp.REPLACE:
            selection.select_none(doc)

    def cancel(self) -> bool:
        if not self._points:
            return False
        self._points = []
        self._repaint_shape()
        return True

    @staticmethod
    def _box(points: list[tuple[float, float]]) -> tuple[float, float, float, float] | None:
        (x0, y0), (x1, y1) = points[0], points[-1]
        if abs(x1 - x0) < 1 or abs(y1 - y0) < 1:
            return None
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def select(self, doc: Document, points: list[tuple[float, float]], op: SelectionOp) -> bool:
        """Apply the shape; False when it is too small to be one (a click)."""
        raise NotImplementedError

    def shape_path(self, points: list[tuple[float, float]]) -> QPainterPath:
        raise NotImplementedError

    def paint_overlay(self, painter: QPainter, view: DocumentSpace) -> None:
        if len(self._points) < 2:
            return
        path = view.document_transform().map(self.shape_path(self._points))
        painter.setBrush(QColor(80, 140, 255, 40))
        painter.setPen(QPen(QColor(0, 0, 0), 1.0))
        painter.drawPath(path)
        painter.setPen(QPen(QColor(255, 255, 255), 1.0, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)


class RectSelectTool(_ShapeSelectTool):
    kind = ToolKind.RECT_SELECT

    def select(self, doc: Document, points: list[tuple[float, float]], op: SelectionOp) -> bool:
        box = self._box(points)
        if box is None:
            return False
        from sfumato.canvas.paint.selection import select_rect

        select_rect(doc, *(float(round(v)) for v in box), op=op)
        return True

    def shape_path(self, points: list[tuple[float, float]]) -> QPainterPath:
        path = QPainterPath()
        (x0, y0), (x1, y1) = points[0], points[-1]
        path.addRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)).normalized())
        return path


class EllipseSelectTool(_ShapeSelectTool):
    kind = ToolKind.ELLIPSE_SELECT

    def select(self, doc: Document, points: list[tuple[float, float]], op: SelectionOp) -> bool:
        box = self._box(points)
        if box is None:
            return False
        from sfumato.canvas.paint.selection import select_ellipse

        select_ellipse(doc, *box, op=op)
        return True

    def shape_path(self, points: list[tuple[float, float]]) -> QPainterPath:
        path = QPainterPath()
        (x0, y0), (x1, y1) = points[0], points[-1]
        path.addEllipse(QRectF(QPointF(x0, y0), QPointF(x1, y1)).normalized())
        return path


class LassoTool(_ShapeSelectTool):
    kind = ToolKind.LASSO

    def _add(self, ev: PointerEvent) -> None:
        last = self._points[-1]
        if (ev.x - last[0]) ** 2 + (ev.y - last[1]) ** 2 >= 1.0:
            self._points.append((ev.x, ev.y))

    def select(self, doc: Document, points: list[tuple[float, float]], op: SelectionOp) -> bool:
        if len(points) < 3:
            return False
        from sfumato.canvas.paint.selection import select_lasso

        select_lasso(doc, points, op=op)
        return True

    def shape_path(self, points: list[tuple[float, float]]) -> QPainterPath:
        path = QPainterPath()
        path.addPolygon(QPolygonF([QPointF(x, y) for x, y in points]))
        path.closeSubpath()
        return path


# -- move ----------------------------------------------------------------------------------------
class MoveTool(Tool):
    """Drags the active layer (or group) by whole pixels; one undoable command per drag."""

    kind = ToolKind.MOVE

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._start: tuple[float, float] | None = None
        self._origin: tuple[int, int] = (0, 0)
        self._layer: Layer | None = None
        self._drag_id: object | None = None
        self._moved = False

    def press(self, ev: PointerEvent) -> None:
        doc = self.document
        if doc is None or doc.active is None:
            self.host.show_message("Select a layer to move.")
            return
        layer = doc.active
        if layer.locked:
            self.host.show_message(f"Layer {layer.name!r} is locked; unlock it to move it.")
            return
        self._layer = layer
        self._start = (ev.x, ev.y)
        self._origin = (layer.x, layer.y)
        self._drag_id = object()
        self._moved = False

    def _apply(self, ev: PointerEvent) -> None:
        doc = self.document
        if self._start is None or doc is None or self._layer is None:
            return
        dx, dy = round(ev.x - self._start[0]), round(ev.y - self._start[1])
        target = (self._origin[0] + dx, self._origin[1] + dy)
        if (self._layer.x, self._layer.y) != target:
            editing.set_offset(doc, self._layer, target[0], target[1], self._drag_id)
            self._moved = True

    def move(self, ev: PointerEvent) -> None:
        self._apply(ev)

    def release(self, ev: PointerEvent) -> None:
        self._apply(ev)
        self._start = None

    def cancel(self) -> bool:
        if self._start is None:
            return False
        self._start = None
        if self._moved and self.document is not None:
            self.document.undo()  # the whole drag is one merged command
        return True

    def cursor_shape(self) -> Qt.CursorShape:
        return Qt.CursorShape.SizeAllCursor


TOOL_CLASSES: dict[ToolKind, type[Tool]] = {
    cls.kind: cls
    for cls in (
        BrushTool,
        EraserTool,
        MaskBrushTool,
        RegionBrushTool,
        FillTool,
        PickerTool,
        RectSelectTool,
        EllipseSelectTool,
        LassoTool,
        MoveTool,
    )
}

"""Marching ants: the selection's outline drawn over the canvas as a view overlay.

The outline is traced once per selection change (OpenCV contours of coverage >= 0.5,
document space) into a ``QPainterPath``; every repaint strokes that path twice (black,
then white dashes) in widget space, so the line stays one device pixel wide at any zoom.
A timer shifts the dash offset to make the ants march, repainting only their bounds.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QObject, QPointF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF
from sfumato.canvas.model.document import Document, DocumentReset, SelectionChanged
from sfumato.desktop.canvas_view import CanvasView

log = logging.getLogger(__name__)


def selection_path(coverage: np.ndarray | None) -> QPainterPath:
    """The outline of ``coverage`` (float32 (h, w) in [0, 1]) as a document-space path."""
    path = QPainterPath()
    if coverage is None:
        return path
    import cv2

    binary = (coverage >= 0.5).astype(np.uint8)
    if not binary.any():
        return path
    # Pad so shapes touching the border still close; contours trace pixel centres, so
    # shift by half a pixel outwards via the pixel-corner approximation below.
    contours, _ = cv2.findContours(
        np.pad(binary, 1), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    for contour in contours:
        pts = contour.reshape(-1, 2).astype(np.float64) - 1.0 + 0.5
        if len(pts) < 2:
            continue
        path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in pts]))
        path.closeSubpath()
    return path


class SelectionOverlay(QObject):
    """Follows one view's document selection and draws its marching ants."""

    Z = 100.0

    def __init__(self, view: CanvasView) -> None:
        super().__init__(view)
        self._view = view
        self._doc: Document | None = None
        self._path = QPainterPath()
        self._phase = 0
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._march)
        view.add_overlay(self.paint, self.Z)

    def set_document(self, doc: Document | None) -> None:
        if self._doc is not None:
            self._doc.changed.disconnect(self._on_event)
        self._doc = doc
        if doc is not None:
            doc.changed.connect(self._on_event)
        self._retrace()

    def _on_event(self, event: object) -> None:
        if isinstance(event, SelectionChanged | DocumentReset):
            self._retrace()

    def _retrace(self) -> None:
        self._view.update(self._widget_bounds())
        self._path = selection_path(self._doc.selection if self._doc is not None else None)
        if self._path.isEmpty():
            self._timer.stop()
        else:
            self._timer.start()
        self._view.update(self._widget_bounds())

    def _widget_bounds(self):  # noqa: ANN202 - QRect
        rect = self._view.document_transform().mapRect(self._path.boundingRect())
        return rect.toAlignedRect().adjusted(-2, -2, 2, 2)

    def _march(self) -> None:
        self._phase = (self._phase + 1) % 8
        if not self._path.isEmpty():
            self._view.update(self._widget_bounds())

    @property
    def path(self) -> QPainterPath:
        return self._path

    def paint(self, painter: QPainter, view: CanvasView) -> None:
        if self._path.isEmpty():
            return
        widget_path = view.document_transform().map(self._path)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0), 1))
        painter.drawPath(widget_path)
        dashes = QPen(QColor(255, 255, 255), 1, Qt.PenStyle.CustomDashLine)
        dashes.setDashPattern([4, 4])
        dashes.setDashOffset(self._phase)
        painter.setPen(dashes)
        painter.drawPath(widget_path)

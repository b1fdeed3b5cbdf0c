"""An inline HSV colour selector: a saturation/value square beside a hue strip.

Drawn with gradients (a handful of painter calls, no per-pixel work). Emits
``color_changed((r, g, b))`` while the user drags; :meth:`set_color` shows a colour
without emitting (the brush panel pushes model values in with it).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

log = logging.getLogger(__name__)

_STRIP = 16  # hue strip width, logical pixels
_GAP = 6


class ColorSquare(QWidget):
    color_changed = Signal(object)  # (r, g, b)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(120, 90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(96)
        self.setToolTip("Brush colour: saturation and value on the left, hue on the right")
        self._h, self._s, self._v = 0.0, 0.0, 0.0
        self._dragging: str | None = None

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(220, 120)

    # -- geometry --------------------------------------------------------------------------
    def _square(self) -> QRectF:
        return QRectF(0.5, 0.5, max(10.0, self.width() - _STRIP - _GAP - 1), self.height() - 1.0)

    def _strip(self) -> QRectF:
        sq = self._square()
        return QRectF(sq.right() + _GAP, 0.5, _STRIP, self.height() - 1.0)

    # -- value -----------------------------------------------------------------------------
    def color(self) -> tuple[int, int, int]:
        c = QColor.fromHsvF(self._h, self._s, self._v)
        return c.red(), c.green(), c.blue()

    def set_color(self, rgb: tuple[int, int, int]) -> None:
        """Show ``rgb`` without emitting; keeps the hue of greys the user had chosen."""
        if rgb == self.color():
            return
        c = QColor(*rgb)
        h, s, v = c.hsvHueF(), c.hsvSaturationF(), c.valueF()
        if h >= 0 and s > 0 and v > 0:
            self._h = h
        self._s, self._v = s, v
        self.update()

    # -- input -----------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._dragging = "hue" if event.position().x() >= self._strip().left() - _GAP / 2 else "sv"
        self._pick(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._dragging:
            self._pick(event.position())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._dragging = None

    def _pick(self, pos: QPointF) -> None:
        def unit(v: float) -> float:
            return min(1.0, max(0.0, v))

        if self._dragging == "hue":
            strip = self._strip()
            self._h = unit((pos.y() - strip.top()) / strip.height()) * 0.9999
        else:
            sq = self._square()
            self._s = unit((pos.x() - sq.left()) / sq.width())
            self._v = 1.0 - unit((pos.y() - sq.top()) / sq.height())
        self.update()
        self.color_changed.emit(self.color())

    # -- painting --------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        sq, strip = self._square(), self._strip()
        # Saturation: white → pure hue, left to right; value: a black gradient from below.
        across = QLinearGradient(sq.topLeft(), sq.topRight())
        across.setColorAt(0, QColor(255, 255, 255))
        across.setColorAt(1, QColor.fromHsvF(self._h, 1.0, 1.0))
        p.fillRect(sq, across)
        down = QLinearGradient(sq.topLeft(), sq.bottomLeft())
        down.setColorAt(0, QColor(0, 0, 0, 0))
        down.setColorAt(1, QColor(0, 0, 0, 255))
        p.fillRect(sq, down)
        hues = QLinearGradient(strip.topLeft(), strip.bottomLeft())
        for i in range(7):
            hues.setColorAt(i / 6, QColor.fromHsvF(min(i / 6, 0.9999), 1.0, 1.0))
        p.fillRect(strip, hues)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(Qt.BrushStyle.NoBrush)
        x = sq.left() + self._s * sq.width()
        y = sq.top() + (1.0 - self._v) * sq.height()
        p.setPen(QPen(QColor(0, 0, 0), 2.0))
        p.drawEllipse(QPointF(x, y), 5, 5)
        p.setPen(QPen(QColor(255, 255, 255), 1.0))
        p.drawEllipse(QPointF(x, y), 5, 5)
        hy = strip.top() + self._h * strip.height()
        p.setPen(QPen(QColor(0, 0, 0), 2.0))
        p.drawRect(QRectF(strip.left() - 1, hy - 2, strip.width() + 2, 4))
        p.end()

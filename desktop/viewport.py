"""The view transform between document pixels and widget coordinates (no Qt).

Widget coordinates are Qt's device-independent pixels (logical pixels); the canvas view
multiplies by ``devicePixelRatio`` only when it sizes its backing images. A document
point ``(x, y)`` appears at widget point ``(x * zoom + offset_x, y * zoom + offset_y)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MIN_ZOOM = 1 / 64
MAX_ZOOM = 64.0


@dataclass(frozen=True)
class Viewport:
    """Zoom (widget pixels per document pixel) and the widget position of document (0, 0)."""

    zoom: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def to_widget(self, x: float, y: float) -> tuple[float, float]:
        return x * self.zoom + self.offset_x, y * self.zoom + self.offset_y

    def to_document(self, wx: float, wy: float) -> tuple[float, float]:
        return (wx - self.offset_x) / self.zoom, (wy - self.offset_y) / self.zoom

    def panned(self, dx: float, dy: float) -> Viewport:
        return replace(self, offset_x=self.offset_x + dx, offset_y=self.offset_y + dy)

    def zoomed_at(self, zoom: float, wx: float, wy: float) -> Viewport:
        """Zoom to ``zoom`` keeping the document point under widget point ``(wx, wy)`` fixed."""
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        dx, dy = self.to_document(wx, wy)
        return Viewport(zoom, wx - dx * zoom, wy - dy * zoom)

    @staticmethod
    def fit(doc_w: int, doc_h: int, view_w: float, view_h: float, margin: float = 16) -> Viewport:
        """The viewport that shows the whole document centred with ``margin`` around it."""
        avail_w = max(1.0, view_w - 2 * margin)
        avail_h = max(1.0, view_h - 2 * margin)
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, min(avail_w / doc_w, avail_h / doc_h)))
        return Viewport.centered(doc_w, doc_h, view_w, view_h, zoom)

    @staticmethod
    def centered(doc_w: int, doc_h: int, view_w: float, view_h: float, zoom: float) -> Viewport:
        return Viewport(zoom, (view_w - doc_w * zoom) / 2, (view_h - doc_h * zoom) / 2)


# Zoom steps the wheel and the menu snap between: powers of 2^(1/4).
def next_zoom_step(zoom: float, steps: float) -> float:
    """``zoom`` moved by ``steps`` quarter-octaves (fractional steps for smooth trackpads)."""
    level = math.log2(zoom) * 4
    if float(steps).is_integer():
        target = round(level) + steps if abs(level - round(level)) < 1e-6 else (
            math.floor(level) + steps if steps > 0 else math.ceil(level) + steps
        )
    else:
        target = level + steps
    return min(MAX_ZOOM, max(MIN_ZOOM, 2 ** (target / 4)))

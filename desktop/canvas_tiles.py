"""The composited document as the canvas view draws it: one ``QImage`` per tile, with
halved mip levels for zoomed-out views, filled within a per-frame time budget.

The compositor (:class:`sfumato.canvas.render.compositor.Compositor`) hands out composited
``TILE``×``TILE`` tiles; :class:`TileCache` keeps them as premultiplied QImages and
fetches again only the tiles the view drops when the compositor reports them dirty, so a
brush dab costs a few tiles, not the stack. :meth:`TileCache.paint` draws a checkerboard
(one textured fill) under the document rectangle, then one ``drawImage`` per visible
tile: the number of painter calls is bounded by the visible tile count.

Coordinates: tile rects are document pixels; the painter draws in widget (logical)
coordinates through a :class:`~sfumato.desktop.viewport.Viewport`. Tile edges are rounded
to *device* pixels (``devicePixelRatio``) so neighbouring tiles meet without seams on
HiDPI screens.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPixmap
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.tiles import TILE
from sfumato.desktop.viewport import Viewport

_CHECKER = 8  # checkerboard square, logical pixels
MAX_CACHED_TILES = 384  # beyond this, tiles off screen are dropped from the cache
FRAME_BUDGET_S = 0.03  # compositing time per repaint before the rest waits a frame
MIN_TILES_PER_FRAME = 4  # always enough for a brush dab's tiles

TileKey = tuple[int, int]


class TileSource(Protocol):
    """What the view needs from a compositor."""

    def tile(self, tx: int, ty: int) -> np.ndarray: ...

    def take_dirty(self) -> list[Rect]: ...


def make_compositor(document: Document) -> TileSource:
    """The document's compositor with the AI layers (masks, regions) shown as overlays."""
    from sfumato.canvas.render.compositor import Compositor

    return Compositor(document, overlays=True)  # type: ignore[return-value]


def tile_to_qimage(pixels: np.ndarray) -> QImage:
    """A composited tile (``(h, w, 4)`` uint8, straight alpha RGBA) as a premultiplied
    ARGB32 QImage (the raster engine's fastest format); the QImage owns its pixels."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    image = QImage(pixels.data, w, h, w * 4, QImage.Format.Format_RGBA8888)
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def tile_rect(key: TileKey) -> Rect:
    """The document rect of tile ``key`` (it may reach past the document's edge)."""
    return Rect(key[0] * TILE, key[1] * TILE, TILE, TILE)


def device_rect(viewport: Viewport, rect: Rect, dpr: float) -> QRectF:
    """Widget rect for a document rect with edges snapped to device pixels."""
    v = viewport

    def snap(value: float) -> float:
        return round(value * dpr) / dpr

    x0 = snap(rect.x * v.zoom + v.offset_x)
    y0 = snap(rect.y * v.zoom + v.offset_y)
    x1 = snap(rect.x1 * v.zoom + v.offset_x)
    y1 = snap(rect.y1 * v.zoom + v.offset_y)
    return QRectF(x0, y0, x1 - x0, y1 - y0)


def _checker_pixmap() -> QPixmap:
    pix = QPixmap(2 * _CHECKER, 2 * _CHECKER)
    pix.fill(QColor(204, 204, 204))
    p = QPainter(pix)
    p.fillRect(0, 0, _CHECKER, _CHECKER, QColor(153, 153, 153))
    p.fillRect(_CHECKER, _CHECKER, _CHECKER, _CHECKER, QColor(153, 153, 153))
    p.end()
    return pix


class TileCache:
    """Composited tiles as QImages (mip levels per tile), and the visible tiles a repaint
    left for a later frame (``deferred``). ``len()`` counts the cached tiles."""

    def __init__(self) -> None:
        self._images: dict[TileKey, list[QImage]] = {}
        self.deferred: set[TileKey] = set()  # visible tiles not composited yet
        self._checker = QBrush(_checker_pixmap())

    def __len__(self) -> int:
        return len(self._images)

    def clear(self) -> None:
        """Forget every tile (the next repaint composites what it shows again)."""
        self._images.clear()

    def drop(self, rect: Rect) -> None:
        """Forget the tiles that ``rect`` (document space) touches."""
        for key in rect.tiles(TILE):
            self._images.pop(key, None)

    def trim(self, visible: Rect) -> None:
        """Past :data:`MAX_CACHED_TILES`, keep only the tiles of ``visible``."""
        if len(self._images) > MAX_CACHED_TILES:
            keep = set(visible.tiles(TILE))
            self._images = {k: v for k, v in self._images.items() if k in keep}

    def take_deferred(self) -> set[TileKey]:
        deferred, self.deferred = self.deferred, set()
        return deferred

    def image(self, source: TileSource, key: TileKey, level: int) -> QImage:
        """The composited tile, downscaled by 2**level (a mipmap for zoomed-out views, so
        a repaint scales by at most 2x instead of resampling full tiles)."""
        images = self._images.get(key)
        if images is None:
            images = [tile_to_qimage(source.tile(*key))]
            self._images[key] = images
        while len(images) <= level:
            prev = images[-1]
            images.append(prev.scaled(
                max(1, prev.width() // 2), max(1, prev.height() // 2),
                Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation,
            ))
        return images[level]

    def paint(
        self,
        painter: QPainter,
        source: TileSource,
        doc_rect: Rect,
        area: Rect,
        viewport: Viewport,
        dpr: float,
        centre: tuple[float, float],
    ) -> None:
        """Draw the checkerboard and the tiles of ``area`` (document space, inside
        ``doc_rect``), those nearest ``centre`` (document space) first. Past the frame
        budget, tiles not cached yet are left to :attr:`deferred`."""
        painter.fillRect(device_rect(viewport, doc_rect, dpr), self._checker)
        device_zoom = viewport.zoom * dpr
        smooth = device_zoom < 1.0
        level = max(0, min(6, int(math.floor(math.log2(1.0 / device_zoom))))) if smooth else 0
        scale = 1.0 / (1 << level)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        started = time.perf_counter()
        rendered = 0
        for key in _paint_order(area, centre):
            shown = tile_rect(key).intersect(doc_rect)
            if key not in self._images:
                # Compositing is the slow part: past the frame budget, leave the
                # checkerboard and finish in later frames (the GUI stays responsive
                # while a big document first appears).
                over_budget = time.perf_counter() - started > FRAME_BUDGET_S
                if rendered >= MIN_TILES_PER_FRAME and over_budget:
                    self.deferred.add(key)
                    continue
                rendered += 1
            image = self.image(source, key, level)
            source_rect = QRectF(0, 0, shown.w * scale, shown.h * scale)
            painter.drawImage(device_rect(viewport, shown, dpr), image, source_rect)


def _paint_order(area: Rect, centre: tuple[float, float]) -> list[TileKey]:
    """Tiles of ``area``, those nearest ``centre`` first."""
    keys = list(area.tiles(TILE))
    if len(keys) <= MIN_TILES_PER_FRAME:
        return keys
    cx, cy = centre
    return sorted(keys, key=lambda k: (k[0] * TILE + TILE / 2 - cx) ** 2 + (k[1] * TILE + TILE / 2 - cy) ** 2)

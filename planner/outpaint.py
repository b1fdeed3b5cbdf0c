"""Outpainting ("Expand"): a picture on a canvas larger than it.

When the canvas has grown around the picture (Image → Canvas Size) or a picture sits on
an otherwise empty canvas, the part no visible picture covers is generated and the
picture itself stays exact. The rule (:func:`expands`):

- some of the canvas lies outside the bounds of every visible image layer (paint or
  generated, with pixels), and
- one of those layers is a **solid picture**: fully opaque over its whole bounds, at
  full opacity, and at least :data:`SOLID_SHARE` of the canvas.

So a sketch on a transparent layer (not solid) is refined as before, and so is a cut-out
on transparency or a small opaque doodle; a grown canvas, or a photo pasted onto an
empty canvas, expands. The
rule reads layer bounds first and a layer's pixels only when the bounds leave part of
the canvas bare, so the window can ask it on every change.

The mask (:func:`uncovered`) is exact: one minus the alpha of the composited picture
over the area. The planner treats it as an inpaint mask (:mod:`.mask`): the denoise mask
grows into the picture so the model repaints a margin that joins, while the paste mask
is the bare part itself, unfeathered (an inpaint's paste fades inward over the picture
beneath; here nothing lies beneath, and a fade would leave a half-transparent seam), so
every pixel the picture covered fully keeps its bytes and none is left transparent. The
bare part starts from a model-free infill (:data:`EXPAND_FILL` unless the settings
choose another; a ``keep`` fill would start it from white), named in the request
summary.
"""

from __future__ import annotations

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, document_offset
from sfumato.canvas.model.tiles import TILE, tile_rect
from sfumato.canvas.render.composite import flatten
from sfumato.inference.request import FillMode

__all__ = ["EXPAND_FILL", "bare_bounds", "expand_fill", "expands", "uncovered"]

#: what the bare part starts from when the settings keep the original pixels (there are none)
EXPAND_FILL = FillMode.TELEA
#: the least share of the canvas a solid picture covers for the canvas around it to expand
SOLID_SHARE = 0.25


def _pictures(doc: Document) -> list[PixelLayer]:
    """The visible image layers (paint, generated) that hold pixels."""
    return [
        layer for layer in doc.pixel_layers()
        if layer.role.is_image and layer.opacity > 0 and layer.effectively_visible()
        and not layer.surface.is_empty()
    ]  # fmt: skip


def _bare_cells(canvas: Rect, rects: list[Rect]) -> list[Rect]:
    """The parts of ``canvas`` outside every one of ``rects``, as cells of the grid their
    edges make."""
    rects = [r.intersect(canvas) for r in rects]
    rects = [r for r in rects if not r.empty]
    xs = sorted({canvas.x, canvas.x1, *(r.x for r in rects), *(r.x1 for r in rects)})
    ys = sorted({canvas.y, canvas.y1, *(r.y for r in rects), *(r.y1 for r in rects)})
    return [
        Rect.from_bounds(x0, y0, x1, y1)
        for x0, x1 in zip(xs, xs[1:])
        for y0, y1 in zip(ys, ys[1:])
        if not any(r.x <= x0 < r.x1 and r.y <= y0 < r.y1 for r in rects)
    ]


def _solid(layer: PixelLayer, canvas: Rect) -> bool:
    """Whether ``layer`` is opaque over its whole bounds, at full opacity, and covers at
    least :data:`SOLID_SHARE` of ``canvas``. Reads the layer tile by tile and stops at the
    first tile that is not opaque (a sketch's first stroke tile), so the window can ask
    it on every change."""
    if layer.opacity < 1.0:
        return False
    surface = layer.surface
    bounds = surface.bounds()  # surface space
    if bounds.translate(*document_offset(layer)).intersect(canvas).area < SOLID_SHARE * canvas.area:
        return False
    for key in bounds.tiles(TILE):
        if not surface.has_tile(key):
            return False
        tile = tile_rect(key)
        alpha = surface.tile(key)[tile.intersect(bounds).slices(tile.x, tile.y)][..., 3]
        if not bool((alpha == 255).all()):
            return False
    return True


def expands(doc: Document) -> bool:
    """Whether a generation of ``doc`` is an outpaint (the module docstring's rule)."""
    pictures = _pictures(doc)
    if not pictures or not _bare_cells(doc.rect, [layer.document_bounds() for layer in pictures]):
        return False
    return any(_solid(layer, doc.rect) for layer in pictures)


def bare_bounds(doc: Document) -> Rect:
    """The bounds of the canvas outside every visible picture layer's bounds (what the
    outpaint's area is planned around; empty when there is none)."""
    cells = _bare_cells(doc.rect, [layer.document_bounds() for layer in _pictures(doc)])
    bounds = Rect(0, 0, 0, 0)
    for cell in cells:
        bounds = cell if bounds.empty else bounds.union(cell)
    return bounds


def uncovered(doc: Document, area: Rect) -> np.ndarray:
    """float32 ``(area.h, area.w)``: how bare each pixel of ``area`` is (1 − the composited
    picture's alpha): the outpaint's inpaint mask."""
    alpha = flatten(doc, area)[..., 3]
    return (255 - alpha).astype(np.float32) * np.float32(1.0 / 255.0)


def expand_fill(chosen: FillMode) -> FillMode:
    """The fill an outpaint starts from: ``chosen``, or :data:`EXPAND_FILL` for ``keep``."""
    return EXPAND_FILL if chosen is FillMode.KEEP else chosen

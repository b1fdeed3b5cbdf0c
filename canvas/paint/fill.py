"""Flood fill, fill selection and the colour picker.

Sources: a fill or pick samples either one layer's pixels or the merged picture. The
merged picture can be given as a document-sized ``(height, width, 4)`` straight RGBA uint8
array or as a callable ``rect -> pixels`` (a view's cached projection); by default it is
computed with :func:`sfumato.canvas.render.composite.flatten`.

Colour distance is the largest per-channel difference of **premultiplied** RGBA (so all
fully transparent pixels are alike whatever colour they store), compared with
``tolerance × 255``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np
from sfumato.canvas.edits.commands import InvalidEditError
from sfumato.canvas.edits.pixel_commands import PaintCoverage
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, document_offset
from sfumato.canvas.paint.selection import bounds, grow
from sfumato.canvas.render.composite import flatten

log = logging.getLogger(__name__)

MergedSource = np.ndarray | Callable[[Rect], np.ndarray]
RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]


def _premultiplied(pixels: np.ndarray) -> np.ndarray:
    f = pixels.astype(np.float32)
    f[..., :3] *= f[..., 3:4] * np.float32(1 / 255)
    return f


def flood_coverage(image: np.ndarray, x: int, y: int, tolerance: float = 0.1,
                   contiguous: bool = True) -> np.ndarray:
    """Pixels of ``image`` (``(h, w, 4)`` straight uint8) similar to the one at ``(x, y)``.

    Returns float32 ``(h, w)`` coverage of 0 or 1. ``contiguous`` keeps only the region
    4-connected to the seed; otherwise every similar pixel counts (global fill).
    """
    h, w = image.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        raise InvalidEditError(f"fill point ({x}, {y}) is outside the image ({w}x{h})")
    if not 0.0 <= tolerance <= 1.0:
        raise InvalidEditError(f"fill tolerance must be between 0 and 1, got {tolerance}")
    # Channel by channel in integers: a 4096² image needs a few 16-32 MB temporaries,
    # not a 256 MB float copy.
    alpha = image[..., 3].astype(np.int32)
    seed_a = int(alpha[y, x])
    diff = np.abs(alpha - seed_a)
    for c in range(3):
        pm = (image[..., c].astype(np.int32) * alpha + 127) // 255
        seed = (int(image[y, x, c]) * seed_a + 127) // 255
        np.maximum(diff, np.abs(pm - seed), out=diff)
    similar = (diff <= int(round(tolerance * 255))).astype(np.uint8)
    if contiguous:
        _, labels = cv2.connectedComponents(similar, connectivity=4)
        similar = (labels == labels[y, x]).astype(np.uint8)
    return similar.astype(np.float32)


def _layer_pixels(doc: Document, layer: PixelLayer, rect: Rect) -> np.ndarray:
    ox, oy = document_offset(layer)
    return layer.surface.read(rect.translate(-ox, -oy))


def _merged(doc: Document, merged: MergedSource | None, rect: Rect) -> np.ndarray:
    if merged is None:
        return flatten(doc, rect)
    if callable(merged):
        return np.asarray(merged(rect))
    if merged.shape[:2] != (doc.height, doc.width) or merged.ndim != 3 or merged.shape[2] != 4:
        raise InvalidEditError(
            f"the merged image must be ({doc.height}, {doc.width}, 4), got {merged.shape}"
        )
    return merged[rect.slices()]


def flood_fill(
    doc: Document,
    layer: PixelLayer,
    x: float,
    y: float,
    color: RGB,
    *,
    tolerance: float = 0.1,
    contiguous: bool = True,
    sample_merged: bool = False,
    merged: MergedSource | None = None,
    opacity: float = 1.0,
    grow_by: int = 0,
) -> PaintCoverage | None:
    """Fill the area around document point ``(x, y)`` on ``layer`` with ``color``; undoable.

    Samples ``layer`` (or the merged picture with ``sample_merged``); the filled area is
    grown by ``grow_by`` pixels (to tuck under anti-aliased line art) and clipped by the
    selection. Returns the command, or None when the point is outside the document or
    nothing would change.
    """
    ix, iy = int(np.floor(x)), int(np.floor(y))
    if not doc.rect.contains(Rect(ix, iy, 1, 1)):
        return None
    source = _merged(doc, merged, doc.rect) if sample_merged else _layer_pixels(doc, layer, doc.rect)
    coverage = flood_coverage(source, ix, iy, tolerance, contiguous)
    if grow_by > 0:
        coverage = grow(coverage, grow_by)
    return _paint(doc, layer, coverage, color, opacity, "Fill")


def fill_selection(doc: Document, layer: PixelLayer, color: RGB, opacity: float = 1.0) -> PaintCoverage | None:
    """Fill the selection (the whole document when there is none) with ``color``; undoable."""
    coverage = np.ones((doc.height, doc.width), np.float32)
    return _paint(doc, layer, coverage, color, opacity, "Fill Selection")


def _paint(doc: Document, layer: PixelLayer, coverage: np.ndarray, color: RGB, opacity: float,
           label: str) -> PaintCoverage | None:
    if doc.selection is not None:
        coverage = coverage * doc.selection
    box = bounds(coverage)
    if box.empty:
        return None
    command = PaintCoverage(doc, layer, np.ascontiguousarray(coverage[box.slices()]), box.x, box.y,
                            color=color, opacity=opacity, label=label)
    doc.execute(command)
    return command


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy <= radius * radius + radius).astype(np.float32)


def pick_color(
    source: Document | np.ndarray,
    x: float,
    y: float,
    radius: int = 0,
    sample_merged: bool = True,
    layer: PixelLayer | None = None,
    merged: MergedSource | None = None,
) -> RGBA | None:
    """The colour at ``(x, y)`` as straight RGBA 0..255, averaged over a disk of ``radius``.

    ``source`` is a document (samples the merged picture, or ``layer`` / the active layer
    when ``sample_merged`` is False) or a straight RGBA uint8 ``(h, w, 4)`` array. Averaging
    is premultiplied, so transparent pixels do not darken the result. Returns None outside
    the image or where nothing is there to sample.
    """
    ix, iy = int(np.floor(x)), int(np.floor(y))
    r = max(int(radius), 0)
    want = Rect(ix - r, iy - r, 2 * r + 1, 2 * r + 1)
    if isinstance(source, np.ndarray):
        bounds_rect = Rect(0, 0, source.shape[1], source.shape[0])
        rect = want.intersect(bounds_rect)
        if not bounds_rect.contains(Rect(ix, iy, 1, 1)):
            return None
        pixels = source[rect.slices()]
    else:
        doc = source
        if not doc.rect.contains(Rect(ix, iy, 1, 1)):
            return None
        rect = want.intersect(doc.rect)
        if sample_merged:
            pixels = _merged(doc, merged, rect)
        else:
            target = layer if layer is not None else doc.active
            if not isinstance(target, PixelLayer):
                return None
            pixels = _layer_pixels(doc, target, rect)
    weights = _disk(r)[(rect.y - want.y):(rect.y1 - want.y), (rect.x - want.x):(rect.x1 - want.x)]
    pm = _premultiplied(pixels)
    total = float(weights.sum())
    avg = (pm * weights[..., None]).reshape(-1, 4).sum(axis=0) / total
    alpha = float(avg[3])
    if alpha <= 0:
        return (0, 0, 0, 0)
    rgb = np.clip(avg[:3] * 255 / alpha, 0, 255)
    return (int(round(rgb[0])), int(round(rgb[1])), int(round(rgb[2])), int(round(alpha)))

"""Selections: float32 ``(height, width)`` coverage in [0, 1] over the document, or None.

``None`` means "no selection" (tools act everywhere). A coverage that selects nothing is
turned into ``None`` when it is applied, as GIMP and Krita do.

Two layers of API:

- Pure functions that build or transform coverage arrays: :func:`rect_coverage`,
  :func:`ellipse_coverage`, :func:`polygon_coverage` (lasso, even-odd, anti-aliased),
  :func:`alpha_coverage`, :func:`combine`, :func:`grow`, :func:`shrink`, :func:`feather`,
  :func:`invert`, :func:`bounds`. They never modify their input.
- Document functions that apply them through an undoable
  :class:`~sfumato.canvas.edits.document_commands.SetSelection`: :func:`select`, :func:`select_rect`,
  :func:`select_ellipse`, :func:`select_lasso`, :func:`select_layer_alpha`,
  :func:`select_all`, :func:`select_none`, :func:`invert_selection`,
  :func:`grow_selection`, :func:`shrink_selection`, :func:`feather_selection`.

Coordinates are document pixels, float allowed: pixel ``(i, j)`` covers
``[i, i+1) × [j, j+1)``; coverage is the exact (rectangles) or 4×-supersampled (polygons,
ellipses) fraction of each pixel inside the shape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from enum import Enum

import cv2
import numpy as np
from sfumato.canvas.edits.commands import InvalidEditError
from sfumato.canvas.edits.document_commands import SetSelection
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect, nonzero_bounds
from sfumato.canvas.model.layers import PixelLayer, document_offset

log = logging.getLogger(__name__)

Shape = tuple[int, int]  # (height, width)
Point = tuple[float, float]

SUBROWS = 4  # vertical supersampling of polygon edges (horizontal coverage is exact)


class SelectionOp(Enum):
    REPLACE = "replace"
    ADD = "add"
    SUBTRACT = "subtract"
    INTERSECT = "intersect"


# -- shapes ------------------------------------------------------------------------------
def _axis_coverage(n: int, lo: float, hi: float) -> np.ndarray:
    """Fraction of each unit cell ``[i, i+1)`` of ``[0, n)`` that lies in ``[lo, hi)``."""
    edges = np.arange(n, dtype=np.float64)
    return np.clip(np.minimum(edges + 1, hi) - np.maximum(edges, lo), 0, 1).astype(np.float32)


def rect_coverage(shape: Shape, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """A rectangle between two corners (any order), with exact fractional edges."""
    h, w = shape
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    return np.outer(_axis_coverage(h, ya, yb), _axis_coverage(w, xa, xb))


def ellipse_coverage(shape: Shape, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The ellipse inscribed in the box between two corners, anti-aliased."""
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    rx, ry = (xb - xa) / 2, (yb - ya) / 2
    if rx <= 0 or ry <= 0:
        return np.zeros(shape, np.float32)
    n = max(64, int(math.pi * (rx + ry)))  # about a vertex per 2 px of perimeter
    angles = np.linspace(0, 2 * math.pi, n, endpoint=False)
    pts = np.stack([xa + rx + rx * np.cos(angles), ya + ry + ry * np.sin(angles)], axis=1)
    return polygon_coverage(shape, pts)


def polygon_coverage(shape: Shape, points: Sequence[Point] | np.ndarray) -> np.ndarray:
    """A closed polygon (the lasso), filled with the even-odd rule, anti-aliased.

    Each pixel row is sampled on ``SUBROWS`` horizontal lines; along a line the covered
    fraction of every pixel is exact.
    """
    h, w = shape
    out = np.zeros((h, w), np.float32)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) < 3 or not np.isfinite(pts).all():
        return out
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    s = SUBROWS
    # Sub-row j samples y = (j + 0.5) / s; an edge crosses it when ymin <= y < ymax.
    j0 = np.ceil(np.minimum(y0, y1) * s - 0.5).clip(0, h * s).astype(np.int64)
    j1 = np.ceil(np.maximum(y0, y1) * s - 0.5).clip(0, h * s).astype(np.int64)
    counts = np.maximum(j1 - j0, 0)
    total = int(counts.sum())
    if total == 0:
        return out
    edge = np.repeat(np.arange(len(pts)), counts)
    starts = np.cumsum(counts) - counts
    j = np.repeat(j0, counts) + (np.arange(total) - np.repeat(starts, counts))
    ys = (j + 0.5) / s
    t = (ys - y0[edge]) / (y1[edge] - y0[edge])
    xs = x0[edge] + t * (x1[edge] - x0[edge])
    order = np.lexsort((xs, j))
    j, xs = j[order], xs[order]
    row, xa, xb = j[0::2], np.clip(xs[0::2], 0, w), np.clip(xs[1::2], 0, w)
    keep = xb > xa
    row, xa, xb = row[keep], xa[keep], xb[keep]
    if row.size == 0:
        return out
    # Span [xa, xb) on a line: pixel floor(xa) gets 1 - frac(xa), full pixels 1, pixel
    # floor(xb) gets frac(xb). Written as four increments of a difference array.
    # Summing the lines of a pixel row in difference form first is the same as averaging
    # their coverage (cumsum is linear), so one cumsum per pixel row suffices.
    ia, fa = np.floor(xa).astype(np.int64), xa - np.floor(xa)
    ib, fb = np.floor(xb).astype(np.int64), xb - np.floor(xb)
    prow = row // s
    stride = w + 2
    block = max(1, (1 << 22) // stride)  # pixel rows per pass (bounded scratch memory)
    for r0 in range(int(prow.min()), int(prow.max()) + 1, block):
        r1 = min(r0 + block, h)
        lo, hi = np.searchsorted(prow, [r0, r1])
        if lo == hi:
            continue
        base = (prow[lo:hi] - r0) * stride
        idx = np.concatenate([base + ia[lo:hi], base + ia[lo:hi] + 1, base + ib[lo:hi], base + ib[lo:hi] + 1])
        val = np.concatenate([1 - fa[lo:hi], fa[lo:hi], fb[lo:hi] - 1, -fb[lo:hi]])
        diff = np.bincount(idx, weights=val, minlength=(r1 - r0) * stride).reshape(r1 - r0, stride)
        cov = np.cumsum(diff[:, :w], axis=1) * (1.0 / s)
        out[r0:r1] = np.clip(cov, 0, 1)
    return out


def alpha_coverage(doc: Document, layer: PixelLayer) -> np.ndarray:
    """A layer's alpha (with its offset) as coverage over the document."""
    ox, oy = document_offset(layer)
    alpha = layer.surface.read(doc.rect.translate(-ox, -oy))[..., 3]
    return alpha.astype(np.float32) * np.float32(1 / 255)


# -- operations --------------------------------------------------------------------------
def combine(current: np.ndarray | None, new: np.ndarray, op: SelectionOp) -> np.ndarray:
    """Combine a new shape with the current selection (``None`` counts as empty here)."""
    if op is SelectionOp.REPLACE or current is None:
        if op in (SelectionOp.SUBTRACT, SelectionOp.INTERSECT) and current is None:
            return np.zeros_like(new)
        return new.astype(np.float32, copy=True)
    if op is SelectionOp.ADD:
        return np.maximum(current, new)
    if op is SelectionOp.SUBTRACT:
        return current * (np.float32(1) - new)
    return np.minimum(current, new)


def bounds(coverage: np.ndarray | None) -> Rect:
    """Bounding rect of the pixels with coverage > 0 (empty when none)."""
    return Rect(0, 0, 0, 0) if coverage is None else nonzero_bounds(coverage)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _with_crop(coverage: np.ndarray, pad: int, fn: object) -> np.ndarray:
    """Apply ``fn`` to the selection's bounds grown by ``pad`` only (the rest stays 0)."""
    h, w = coverage.shape
    box = bounds(coverage).grow(pad).intersect(Rect(0, 0, w, h))
    out = np.zeros_like(coverage)
    if box.empty:
        return out
    out[box.slices()] = fn(np.ascontiguousarray(coverage[box.slices()]))  # type: ignore[operator]
    return out


def grow(coverage: np.ndarray, radius: int) -> np.ndarray:
    """Dilate by ``radius`` pixels (a round structuring element); soft edges stay soft."""
    if radius <= 0:
        return coverage.copy()
    kernel = _disk(radius)
    return _with_crop(coverage, radius + 1, lambda c: cv2.dilate(c, kernel))


def shrink(coverage: np.ndarray, radius: int) -> np.ndarray:
    """Erode by ``radius`` pixels; the document edge counts as unselected."""
    if radius <= 0:
        return coverage.copy()
    kernel = _disk(radius)
    return _with_crop(
        coverage, 1,
        lambda c: cv2.erode(c, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0),
    )


def feather(coverage: np.ndarray, radius: float) -> np.ndarray:
    """Soften edges with a Gaussian of sigma ``radius / 2`` (most of the ramp spans ±radius).

    The selection is taken to continue past the document edge, so a selection touching
    the edge stays solid there.

    Large radii use three box blurs (the same curve within a few percent, O(1) per pixel).
    """
    if radius <= 0:
        return coverage.copy()
    sigma = radius / 2
    pad = int(math.ceil(3 * sigma)) + 1
    if sigma <= 8:
        return _with_crop(coverage, pad, lambda c: cv2.GaussianBlur(
            c, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE))
    width = max(3, int(round(math.sqrt(12 * sigma * sigma / 3 + 1))) | 1)

    def boxes(c: np.ndarray) -> np.ndarray:
        for _ in range(3):
            c = cv2.blur(c, (width, width), borderType=cv2.BORDER_REPLICATE)
        return c

    return _with_crop(coverage, pad, boxes)


def invert(coverage: np.ndarray) -> np.ndarray:
    return np.float32(1) - coverage


# -- document operations (undoable) --------------------------------------------------------
def _apply(doc: Document, coverage: np.ndarray | None, label: str) -> None:
    if coverage is not None and not coverage.any():
        coverage = None
    doc.execute(SetSelection(doc, coverage, label))


def select(doc: Document, coverage: np.ndarray, op: SelectionOp = SelectionOp.REPLACE,
           label: str = "Select") -> None:
    """Combine ``coverage`` (float32 ``(height, width)``) with the selection; undoable."""
    if coverage.shape != (doc.height, doc.width):
        raise InvalidEditError(
            f"selection shape {coverage.shape} does not match the document ({doc.height}, {doc.width})"
        )
    _apply(doc, combine(doc.selection, coverage, op), label)


def _shape(doc: Document) -> Shape:
    return doc.height, doc.width


def select_rect(doc: Document, x0: float, y0: float, x1: float, y1: float,
                op: SelectionOp = SelectionOp.REPLACE) -> None:
    select(doc, rect_coverage(_shape(doc), x0, y0, x1, y1), op, "Rectangle Select")


def select_ellipse(doc: Document, x0: float, y0: float, x1: float, y1: float,
                   op: SelectionOp = SelectionOp.REPLACE) -> None:
    select(doc, ellipse_coverage(_shape(doc), x0, y0, x1, y1), op, "Ellipse Select")


def select_lasso(doc: Document, points: Sequence[Point], op: SelectionOp = SelectionOp.REPLACE) -> None:
    select(doc, polygon_coverage(_shape(doc), points), op, "Lasso Select")


def select_layer_alpha(doc: Document, layer: PixelLayer, op: SelectionOp = SelectionOp.REPLACE) -> None:
    select(doc, alpha_coverage(doc, layer), op, "Select Layer Alpha")


def select_all(doc: Document) -> None:
    _apply(doc, np.ones(_shape(doc), np.float32), "Select All")


def select_none(doc: Document) -> None:
    if doc.selection is not None:
        _apply(doc, None, "Deselect")


def invert_selection(doc: Document) -> None:
    """Invert; with no selection this selects nothing (a no-op, as "none" means "all")."""
    if doc.selection is not None:
        _apply(doc, invert(doc.selection), "Invert Selection")


def grow_selection(doc: Document, radius: int) -> None:
    if doc.selection is not None:
        _apply(doc, grow(doc.selection, radius), "Grow Selection")


def shrink_selection(doc: Document, radius: int) -> None:
    if doc.selection is not None:
        _apply(doc, shrink(doc.selection, radius), "Shrink Selection")


def feather_selection(doc: Document, radius: float) -> None:
    if doc.selection is not None:
        _apply(doc, feather(doc.selection, radius), "Feather Selection")


def selection_bounds(doc: Document) -> Rect:
    """Bounds of the selection, or the whole document when there is none."""
    return doc.rect if doc.selection is None else bounds(doc.selection)

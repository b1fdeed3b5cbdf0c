"""Selections: shapes (exact/anti-aliased), combining, morphology, feather, undo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.edits.commands import InvalidEditError
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.paint import selection as sel
from sfumato.canvas.paint.selection import SelectionOp

SHAPE = (100, 120)


def test_rectangle_is_exact_with_fractional_edges() -> None:
    c = sel.rect_coverage(SHAPE, 10.5, 20.25, 30.5, 40.25)  # 20 x 20
    assert c.dtype == np.float32 and c.shape == SHAPE
    assert c.sum() == pytest.approx(400)
    assert c[30, 15] == 1.0 and c[30, 10] == 0.5 and c[20, 15] == 0.75
    np.testing.assert_array_equal(c, sel.rect_coverage(SHAPE, 30.5, 40.25, 10.5, 20.25))


def test_ellipse_area_and_antialiasing() -> None:
    c = sel.ellipse_coverage(SHAPE, 10, 10, 110, 70)  # rx 50, ry 30
    assert c.sum() == pytest.approx(math.pi * 50 * 30, rel=0.005)
    assert c[40, 60] == 1.0 and c[40, 5] == 0.0
    edge = c[(c > 0) & (c < 1)]
    assert edge.size > 100  # a soft rim, not a staircase
    assert sel.ellipse_coverage(SHAPE, 10, 10, 10, 50).sum() == 0


def test_lasso_uses_even_odd_and_matches_polygon_area() -> None:
    tri = [(10.0, 10.0), (90.0, 10.0), (10.0, 90.0)]
    c = sel.polygon_coverage(SHAPE, tri)
    assert c.sum() == pytest.approx(80 * 80 / 2, rel=0.005)
    assert c[20, 20] == 1.0 and c[80, 80] == 0.0
    # A pentagram: the centre is crossed twice, so even-odd leaves it out.
    pts = [(60 + 45 * math.cos(a), 50 + 45 * math.sin(a))
           for a in np.linspace(0, 4 * math.pi, 5, endpoint=False) - math.pi / 2]
    star = sel.polygon_coverage(SHAPE, pts)
    assert star[50, 60] == 0.0
    assert star[10, 60] == 1.0  # the top point
    assert sel.polygon_coverage(SHAPE, [(0, 0), (5, 5)]).sum() == 0


def test_lasso_is_clipped_to_the_document() -> None:
    c = sel.polygon_coverage(SHAPE, [(-50, -50), (60, -50), (60, 50), (-50, 50)])
    assert c.sum() == pytest.approx(60 * 50)
    assert c.max() == 1.0


def test_combine_operations() -> None:
    a = sel.rect_coverage(SHAPE, 0, 0, 60, 100)
    b = sel.rect_coverage(SHAPE, 40, 0, 120, 100)
    assert sel.combine(a, b, SelectionOp.REPLACE).sum() == b.sum()
    assert sel.combine(a, b, SelectionOp.ADD).sum() == 120 * 100
    assert sel.combine(a, b, SelectionOp.SUBTRACT).sum() == 40 * 100
    assert sel.combine(a, b, SelectionOp.INTERSECT).sum() == 20 * 100
    assert sel.combine(None, b, SelectionOp.ADD).sum() == b.sum()
    assert sel.combine(None, b, SelectionOp.INTERSECT).sum() == 0


def test_grow_and_shrink_move_the_edge_by_the_radius() -> None:
    c = sel.rect_coverage(SHAPE, 40, 40, 80, 60)
    grown = sel.grow(c, 5)
    assert sel.bounds(grown) == Rect(35, 35, 50, 30)
    assert grown[50, 36] == 1.0 and grown[36, 36] == 0.0  # round corners
    shrunk = sel.shrink(c, 5)
    assert sel.bounds(shrunk) == Rect(45, 45, 30, 10)
    assert sel.shrink(c, 20).sum() == 0
    np.testing.assert_array_equal(sel.grow(c, 0), c)
    assert c.sum() == 40 * 20  # inputs are never modified


def test_feather_softens_symmetrically() -> None:
    c = sel.rect_coverage((100, 300), 30, 0, 250, 100)
    for radius in (6.0, 40.0):  # the Gaussian and the box-blur paths
        f = sel.feather(c, radius)
        row = f[50]
        assert row[140] > 0.99 and row[29] == pytest.approx(1 - row[30], abs=0.05)
        assert 0.35 < row[30] < 0.65
        assert row[30 - int(radius)] < 0.2 and row[30 + int(radius) - 1] > 0.8
        assert f.sum() == pytest.approx(c.sum(), rel=0.2)


def test_invert_and_bounds() -> None:
    c = sel.rect_coverage(SHAPE, 10, 10, 20, 20)
    inv = sel.invert(c)
    assert inv[15, 15] == 0 and inv[0, 0] == 1
    assert sel.bounds(c) == Rect(10, 10, 10, 10)
    assert sel.bounds(np.zeros(SHAPE, np.float32)).empty
    assert sel.bounds(None).empty


def test_document_operations_are_undoable() -> None:
    doc = Document(120, 100)
    sel.select_rect(doc, 10, 10, 50, 50)
    assert doc.history.undo_label == "Rectangle Select"
    sel.select_ellipse(doc, 40, 40, 100, 90, SelectionOp.ADD)
    union = doc.selection.copy()  # type: ignore[union-attr]
    sel.select_lasso(doc, [(0, 0), (30, 0), (0, 30)], SelectionOp.SUBTRACT)
    assert doc.selection[12, 12] == 0  # type: ignore[index]
    sel.grow_selection(doc, 3)
    sel.shrink_selection(doc, 2)
    sel.feather_selection(doc, 4)
    sel.invert_selection(doc)
    assert sel.selection_bounds(doc) == doc.rect
    for _ in range(5):
        doc.undo()
    np.testing.assert_array_equal(doc.selection, union)
    sel.select_none(doc)
    assert doc.selection is None and doc.history.undo_label == "Deselect"
    assert sel.selection_bounds(doc) == doc.rect
    sel.select_all(doc)
    assert doc.selection is not None and doc.selection.min() == 1.0
    doc.undo()
    doc.undo()
    np.testing.assert_array_equal(doc.selection, union)


def test_selecting_nothing_means_no_selection() -> None:
    doc = Document(120, 100)
    sel.select_rect(doc, 10, 10, 50, 50)
    sel.select_rect(doc, 60, 60, 70, 70, SelectionOp.INTERSECT)
    assert doc.selection is None
    doc.undo()
    assert doc.selection is not None


def test_select_layer_alpha_follows_offsets() -> None:
    doc = Document(120, 100)
    px = np.zeros((10, 10, 4), np.uint8)
    px[..., 3] = 128
    layer = PixelLayer("blob", TiledSurface.from_array(px), x=30, y=40)
    editing.add_layer(doc, layer)
    sel.select_layer_alpha(doc, layer)
    assert doc.selection is not None
    assert sel.bounds(doc.selection) == Rect(30, 40, 10, 10)
    assert doc.selection[45, 35] == pytest.approx(128 / 255)
    with pytest.raises(InvalidEditError):
        sel.select(doc, np.ones((3, 3), np.float32))

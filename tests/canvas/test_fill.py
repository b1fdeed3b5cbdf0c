"""Flood fill (tolerance, contiguous/global, merged sampling), fill selection, colour picking."""

from __future__ import annotations

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.edits.commands import LayerLockedError
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.paint.fill import fill_selection, flood_coverage, flood_fill, pick_color
from sfumato.canvas.paint.selection import select_rect

BLUE = (0, 0, 255)


def _two_boxes() -> np.ndarray:
    """White 60x40 image with a black frame splitting two white boxes, and a grey patch."""
    img = np.full((40, 60, 4), 255, np.uint8)
    img[:, 29:31, :3] = 0  # a vertical black line
    img[5:10, 5:10, :3] = 240  # near-white patch in the left box
    return img


def _doc_with(img: np.ndarray) -> tuple[Document, PixelLayer]:
    doc = Document(img.shape[1], img.shape[0])
    layer = PixelLayer("art", TiledSurface.from_array(img))
    editing.add_layer(doc, layer)
    doc.history.clear()
    return doc, layer


def test_contiguous_fill_stops_at_lines_and_respects_tolerance() -> None:
    img = _two_boxes()
    strict = flood_coverage(img, 2, 2, tolerance=0.0)
    assert strict[20, 20] == 1 and strict[20, 40] == 0 and strict[7, 7] == 0
    loose = flood_coverage(img, 2, 2, tolerance=0.1)
    assert loose[7, 7] == 1 and loose[20, 40] == 0
    global_fill = flood_coverage(img, 2, 2, tolerance=0.0, contiguous=False)
    assert global_fill[20, 40] == 1 and global_fill[20, 30] == 0


def test_transparent_pixels_match_whatever_colour_they_store() -> None:
    img = np.zeros((10, 10, 4), np.uint8)
    img[:, 5:, :3] = 200  # invisible junk colour
    assert flood_coverage(img, 0, 0, tolerance=0.0).sum() == 100


def test_flood_fill_paints_the_layer_and_undoes() -> None:
    doc, layer = _doc_with(_two_boxes())
    before = layer.surface.read(doc.rect)
    command = flood_fill(doc, layer, 2.5, 2.5, BLUE, tolerance=0.0)
    assert command is not None and doc.history.undo_label == "Fill"
    px = layer.surface.read(doc.rect)
    assert tuple(px[20, 20]) == (*BLUE, 255)
    assert tuple(px[20, 40]) == (255, 255, 255, 255)
    assert tuple(px[20, 29]) == (0, 0, 0, 255)
    doc.undo()
    np.testing.assert_array_equal(layer.surface.read(doc.rect), before)
    assert flood_fill(doc, layer, -5, 3, BLUE) is None


def test_fill_can_sample_the_merged_image() -> None:
    lines = _two_boxes()
    doc, art = _doc_with(lines)
    paint = PixelLayer("colour")
    editing.add_layer(doc, paint)  # empty layer on top: sampling it alone would fill everything
    flood_fill(doc, paint, 2, 2, BLUE, tolerance=0.0, sample_merged=True)
    a = paint.surface.read(doc.rect)[..., 3]
    assert a[20, 20] == 255 and a[20, 40] == 0
    doc.undo()
    flood_fill(doc, paint, 2, 2, BLUE, tolerance=0.0, sample_merged=True, merged=lambda r: lines[r.slices()])
    assert paint.surface.read(doc.rect)[20, 40, 3] == 0
    doc.undo()
    flood_fill(doc, paint, 2, 2, BLUE)
    assert paint.surface.read(doc.rect)[..., 3].min() == 255


def test_fill_is_clipped_by_the_selection_and_grows() -> None:
    doc, layer = _doc_with(_two_boxes())
    select_rect(doc, 0, 0, 20, 40)
    flood_fill(doc, layer, 2, 2, BLUE, tolerance=0.0)
    px = layer.surface.read(doc.rect)
    assert tuple(px[20, 10, :3]) == BLUE and tuple(px[20, 25, :3]) == (255, 255, 255)
    doc.undo()
    doc.undo()
    flood_fill(doc, layer, 2, 2, BLUE, tolerance=0.0, grow_by=1)
    assert tuple(layer.surface.read(doc.rect)[20, 29, :3]) == BLUE  # tucked under the line


def test_fill_selection_and_locked_layers() -> None:
    doc, layer = _doc_with(_two_boxes())
    select_rect(doc, 40, 10, 50, 20)
    fill_selection(doc, layer, (10, 200, 10), opacity=0.5)
    px = layer.surface.read(doc.rect)
    assert tuple(px[15, 45]) == (133, 228, 133, 255)
    assert tuple(px[25, 45]) == (255, 255, 255, 255)
    editing.set_property(doc, layer, "locked", True)
    with pytest.raises(LayerLockedError):
        fill_selection(doc, layer, BLUE)


def test_fill_on_an_empty_layer_covers_the_document() -> None:
    doc = Document(300, 300)
    layer = PixelLayer("empty")
    editing.add_layer(doc, layer)
    flood_fill(doc, layer, 150, 150, BLUE)
    assert layer.surface.bounds() == Rect(0, 0, 300, 300)


def test_pick_color() -> None:
    img = np.zeros((20, 20, 4), np.uint8)
    img[:, :10] = (255, 0, 0, 255)
    img[:, 10:] = (0, 0, 255, 255)
    assert pick_color(img, 2, 2) == (255, 0, 0, 255)
    assert pick_color(img, 15.7, 3.2) == (0, 0, 255, 255)
    mixed = pick_color(img, 10, 10, radius=3)
    assert mixed is not None and 90 < mixed[0] < 140 and 110 < mixed[2] < 170 and mixed[3] == 255
    assert pick_color(img, 25, 2) is None
    # Transparent neighbours do not darken the average (premultiplied averaging).
    half = np.zeros((5, 5, 4), np.uint8)
    half[:, :2] = (200, 100, 50, 255)
    picked = pick_color(half, 2, 2, radius=2)
    assert picked is not None and picked[:3] == (200, 100, 50) and 0 < picked[3] < 255


def test_pick_color_from_a_document() -> None:
    doc = Document(50, 50)
    bottom = PixelLayer("b", TiledSurface.from_array(np.full((50, 50, 4), (0, 255, 0, 255), np.uint8)))
    top = PixelLayer("t", TiledSurface.from_array(np.full((10, 10, 4), (255, 0, 0, 255), np.uint8)),
                     x=20, y=20, opacity=0.5)
    editing.add_layer(doc, bottom)
    editing.add_layer(doc, top)
    merged = pick_color(doc, 25, 25)
    assert merged is not None and merged[0] == pytest.approx(128, abs=1) and merged[1] == pytest.approx(127, abs=1)
    assert pick_color(doc, 25, 25, sample_merged=False) == (255, 0, 0, 255)  # the active layer
    assert pick_color(doc, 5, 5, sample_merged=False) == (0, 0, 0, 0)
    assert pick_color(doc, 5, 5, sample_merged=False, layer=bottom) == (0, 255, 0, 255)
    assert pick_color(doc, 60, 5) is None

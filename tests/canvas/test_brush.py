"""Brush engine: dabs, pressure, hardness, spacing, modes, transactions, undo memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.edits.commands import InvalidEditError, LayerLockedError
from sfumato.canvas.model.document import Document, PixelsChanged
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.history import HistoryBusyError
from sfumato.canvas.model.layers import GroupLayer, PixelLayer, Role
from sfumato.canvas.model.tiles import TILE, TiledSurface
from sfumato.canvas.paint.brush import Brush, BrushMode, Curve, Stroke, StrokeClosedError, dab_mask

RED = (220, 10, 10)
HARD = Brush(size=10, hardness=1.0, color=RED, size_pressure=None)


def _doc(w: int = 200, h: int = 100) -> tuple[Document, PixelLayer]:
    doc = Document(w, h)
    layer = PixelLayer("paint")
    editing.add_layer(doc, layer)
    doc.history.clear()
    return doc, layer


def _filled_layer(doc: Document, rgba: tuple[int, int, int, int]) -> PixelLayer:
    px = np.empty((doc.height, doc.width, 4), np.uint8)
    px[...] = rgba
    layer = PixelLayer("filled", TiledSurface.from_array(px))
    editing.add_layer(doc, layer)
    doc.history.clear()
    return layer


def _line(doc: Document, layer: PixelLayer, brush: Brush, points: list[tuple[float, float, float]]) -> Stroke:
    stroke = Stroke(doc, layer, brush)
    for x, y, p in points:
        stroke.add_point(x, y, p)
    stroke.end()
    return stroke


def _alpha(doc: Document, layer: PixelLayer) -> np.ndarray:
    return layer.surface.read(doc.rect)[..., 3]


def test_dab_mask_is_round_antialiased_and_has_the_right_area() -> None:
    mask, big_r = dab_mask(40.0, 1.0)
    assert mask.shape == (2 * big_r + 1,) * 2
    assert mask.sum() == pytest.approx(math.pi * 20**2, rel=0.01)
    assert ((mask > 0) & (mask < 1)).any(), "edges must be anti-aliased"
    assert mask[big_r, big_r] == 1.0
    assert not mask.flags.writeable


def test_subpixel_offset_moves_the_dab() -> None:
    m0, r = dab_mask(9.0, 1.0, 0.0, 0.0)
    m1, _ = dab_mask(9.0, 1.0, 0.5, 0.25)
    xs = np.arange(m0.shape[1])

    def centroid(m: np.ndarray) -> tuple[float, float]:
        return float((m.sum(0) * xs).sum() / m.sum()), float((m.sum(1) * xs).sum() / m.sum())

    (x0, y0), (x1, y1) = centroid(m0), centroid(m1)
    assert x1 - x0 == pytest.approx(0.5, abs=0.05)
    assert y1 - y0 == pytest.approx(0.25, abs=0.05)


def test_a_stroke_paints_the_expected_pixels() -> None:
    doc, layer = _doc()
    _line(doc, layer, HARD, [(20, 50, 1), (180, 50, 1)])
    px = layer.surface.read(doc.rect)
    assert tuple(px[50, 100]) == (*RED, 255)
    assert (px[50, 20:181, 3] == 255).all(), "a gap along the stroke"
    assert (px[46:54, 30:170, 3] == 255).all()  # 10 px wide
    assert (px[:44, :, 3] == 0).all() and (px[57:, :, 3] == 0).all()
    assert px[50, 8, 3] == 0 and px[50, 192, 3] == 0  # round caps end at the radius
    assert doc.history.undo_label == "Brush Stroke"


def test_pressure_varies_dab_size() -> None:
    brush = Brush(size=40, hardness=1.0, size_pressure=Curve.linear(0.0, 1.0))
    areas = []
    for p in (1.0, 0.5, 0.25):
        doc, layer = _doc()
        _line(doc, layer, brush, [(100, 50, p)])
        areas.append(float(_alpha(doc, layer).astype(np.float64).sum() / 255))
    assert areas[0] == pytest.approx(math.pi * 20**2, rel=0.03)
    assert areas[1] == pytest.approx(areas[0] / 4, rel=0.08)
    assert areas[2] == pytest.approx(areas[0] / 16, rel=0.15)


def test_pressure_varies_opacity_when_asked() -> None:
    brush = Brush(size=20, hardness=1.0, size_pressure=None, opacity_pressure=Curve.linear(0.0, 1.0))
    doc, layer = _doc()
    _line(doc, layer, brush, [(30, 30, 0.5), (170, 30, 0.5)])
    assert _alpha(doc, layer)[30, 100] == pytest.approx(128, abs=1)


def test_hardness_controls_the_falloff() -> None:
    profiles = {}
    for hardness in (1.0, 0.5, 0.0):
        doc, layer = _doc()
        _line(doc, layer, Brush(size=60, hardness=hardness, size_pressure=None), [(100.5, 50.5, 1)])
        profiles[hardness] = _alpha(doc, layer)[50, 100:135].astype(int)
    hard, mid, soft = profiles[1.0], profiles[0.5], profiles[0.0]
    assert (hard[:29] == 255).all()
    assert mid[0] == 255 and (np.diff(mid) <= 0).all()
    assert (np.diff(soft) <= 0).all()
    assert soft[22] < mid[22] < hard[22]  # at ~3/4 of the radius
    assert hard[31] == mid[31] == soft[31] == 0  # nothing beyond the rim


def test_spacing_leaves_no_gaps_even_for_fast_pens() -> None:
    doc, layer = _doc(400, 100)
    brush = Brush(size=8, hardness=1.0, spacing=0.5, size_pressure=None)
    _line(doc, layer, brush, [(10, 50, 1), (390, 50, 1)])  # two events 380 px apart
    centre = _alpha(doc, layer)[50, 10:391]
    assert (centre == 255).all()
    stroke = Stroke(doc, layer, brush)
    stroke.add_point(10, 20)
    stroke.add_point(390, 20)
    assert stroke.dab_count == pytest.approx(380 / 4 + 1, abs=2)
    stroke.end()


def test_opacity_caps_overlapping_dabs_and_flow_builds_up() -> None:
    doc, layer = _doc()
    brush = Brush(size=20, hardness=1.0, opacity=0.5, size_pressure=None)
    _line(doc, layer, brush, [(30, 50, 1), (170, 50, 1), (30, 50, 1), (170, 50, 1)])
    a = _alpha(doc, layer)
    assert a.max() == 128
    doc2, layer2 = _doc()
    light = Brush(size=20, hardness=1.0, flow=0.1, spacing=0.05, size_pressure=None)
    stroke = Stroke(doc2, layer2, light)
    stroke.add_point(100, 50)
    one_dab = int(_alpha(doc2, layer2)[50, 100])
    stroke.add_point(110, 50)
    stroke.end()
    assert one_dab == pytest.approx(26, abs=1)
    assert _alpha(doc2, layer2)[50, 105] > 2 * one_dab


def test_eraser_reduces_alpha_and_keeps_colour() -> None:
    doc, _ = _doc()
    layer = _filled_layer(doc, (10, 200, 30, 255))
    _line(doc, layer, Brush(size=10, hardness=1.0, mode=BrushMode.ERASE, size_pressure=None),
          [(20, 50, 1), (180, 50, 1)])
    px = layer.surface.read(doc.rect)
    assert (px[50, 20:181, 3] == 0).all()
    assert (px[10, :, 3] == 255).all()
    assert tuple(px[10, 10]) == (10, 200, 30, 255)
    half = Brush(size=10, hardness=1.0, opacity=0.5, mode=BrushMode.ERASE, size_pressure=None)
    _line(doc, layer, half, [(20, 20, 1), (180, 20, 1)])
    assert layer.surface.read(doc.rect)[20, 100, 3] == 128
    assert doc.history.undo_label == "Eraser Stroke"


def test_mask_brush_paints_mask_alpha_in_a_fixed_colour() -> None:
    doc, paint = _doc()
    mask = PixelLayer("mask", role=Role.INPAINT_MASK)
    editing.add_layer(doc, mask)
    _line(doc, mask, Brush(size=10, color=(1, 2, 3), mode=BrushMode.MASK), [(50, 50, 1)])
    px = mask.surface.read(doc.rect)
    assert tuple(px[50, 50]) == (255, 255, 255, 255)
    with pytest.raises(InvalidEditError, match="mask brush"):
        Stroke(doc, paint, Brush(mode=BrushMode.MASK))
    assert not doc.history.busy


def test_locked_layer_is_refused() -> None:
    doc, layer = _doc()
    editing.set_property(doc, layer, "locked", True)
    with pytest.raises(LayerLockedError, match="locked"):
        Stroke(doc, layer, HARD)
    assert not doc.history.busy
    with pytest.raises(InvalidEditError, match="group"):
        Stroke(doc, GroupLayer("g"), HARD)  # type: ignore[arg-type]


def test_abort_restores_everything() -> None:
    doc, _ = _doc()
    layer = _filled_layer(doc, (5, 6, 7, 100))
    before = layer.surface.read(doc.rect)
    stroke = Stroke(doc, layer, HARD)
    stroke.add_point(10, 10)
    stroke.add_point(150, 80)
    assert not np.array_equal(layer.surface.read(doc.rect), before)
    stroke.abort()
    np.testing.assert_array_equal(layer.surface.read(doc.rect), before)
    assert not doc.history.can_undo and not doc.history.busy
    with pytest.raises(StrokeClosedError):
        stroke.add_point(1, 1)


def test_history_is_held_during_a_stroke() -> None:
    doc, layer = _doc()
    editing.set_property(doc, layer, "name", "x")
    stroke = Stroke(doc, layer, HARD)
    stroke.add_point(10, 10)
    with pytest.raises(HistoryBusyError):
        doc.undo()
    stroke.end()
    assert doc.history.undo_count == 2


def test_undo_stores_only_touched_pixels_on_a_big_layer() -> None:
    doc = Document(4096, 4096)
    layer = _filled_layer(doc, (90, 90, 90, 255))
    before = {k: layer.surface.tile(k).copy() for k in [(0, 0), (1, 0), (0, 1), (1, 1)]}
    brush = Brush(size=32, hardness=0.8, color=RED, size_pressure=None)
    _line(doc, layer, brush, [(230, 240, 1), (290, 270, 1)])  # crosses four tiles
    held = doc.history.nbytes()
    assert 0 < held <= (60 + 34) * (30 + 34) * 4  # the stroke's bounding box, not tiles
    assert held < layer.surface.nbytes() / 1000
    after = layer.surface.read(Rect(0, 0, 2 * TILE, 2 * TILE))
    doc.undo()
    for key, tile in before.items():
        np.testing.assert_array_equal(layer.surface.tile(key), tile)
    doc.redo()
    np.testing.assert_array_equal(layer.surface.read(Rect(0, 0, 2 * TILE, 2 * TILE)), after)


def test_strokes_on_an_empty_layer_hold_almost_nothing() -> None:
    doc, layer = _doc(1000, 1000)
    _line(doc, layer, Brush(size=64), [(100, 100, 1), (900, 900, 1)])
    assert doc.history.nbytes() == 0  # before was transparent: stored as "nothing"
    doc.undo()
    assert layer.surface.tile_keys() == []


def test_selection_clips_dabs() -> None:
    doc, layer = _doc()
    sel = np.zeros((100, 200), np.float32)
    sel[:, :100] = 1.0
    sel[:, 150:] = 0.5
    editing.set_selection(doc, sel)
    _line(doc, layer, HARD, [(20, 50, 1), (180, 50, 1)])
    a = _alpha(doc, layer)
    assert (a[50, 20:100] == 255).all()
    assert (a[:, 100:150] == 0).all()
    assert (a[50, 150:181] == 128).all()


def test_layer_offset_maps_document_to_surface_space() -> None:
    doc, layer = _doc()
    editing.set_offset(doc, layer, 100, -20)
    events: list[object] = []
    doc.changed.connect(events.append)
    stroke = Stroke(doc, layer, HARD)
    dirty = stroke.add_point(150, 50)
    stroke.end()
    assert layer.surface.read(Rect(50, 70, 1, 1))[0, 0, 3] == 255
    assert dirty.contains(Rect(145, 45, 10, 10))
    assert any(isinstance(e, PixelsChanged) and e.rect == dirty for e in events)
    # Painting is clipped to the document: nothing lands left of x=0 in document space.
    stroke = Stroke(doc, layer, HARD)
    stroke.add_point(2, 50)
    stroke.end()
    assert layer.surface.read(Rect(-110, 60, 8, 20))[..., 3].max() == 0


def test_smoothing_lags_and_end_catches_up() -> None:
    doc, layer = _doc()
    brush = Brush(size=6, hardness=1.0, smoothing=0.8, size_pressure=None)
    stroke = Stroke(doc, layer, brush)
    stroke.add_point(20, 50)
    stroke.add_point(180, 50)
    assert _alpha(doc, layer)[50, 100] == 0  # the smoothed point moved only 20% of the way
    stroke.end()
    assert (_alpha(doc, layer)[50, 20:181] == 255).all()


def test_smoothing_uses_timestamps() -> None:
    doc, layer = _doc()
    brush = Brush(size=6, hardness=1.0, smoothing=0.5, size_pressure=None)
    with Stroke(doc, layer, brush) as stroke:
        stroke.add_point(20, 50, 1, t=0.0)
        stroke.add_point(180, 50, 1, t=1.0)  # a long pause: the path catches up
        assert _alpha(doc, layer)[50, 175] == 255
    assert not stroke.is_open and doc.history.can_undo


def test_context_manager_aborts_on_error() -> None:
    doc, layer = _doc()
    with pytest.raises(RuntimeError), Stroke(doc, layer, HARD) as stroke:
        stroke.add_point(50, 50)
        raise RuntimeError("pen lost")
    assert _alpha(doc, layer).max() == 0 and not doc.history.can_undo


def test_brush_values_are_checked() -> None:
    for bad in (dict(size=0), dict(hardness=2), dict(opacity=-1), dict(spacing=0), dict(color=(300, 0, 0)),
                dict(smoothing=1.0)):
        with pytest.raises(ValueError):
            Brush(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Curve(((1.0, 0.0), (0.0, 1.0)))


def test_lazy_radius_ignores_jitter_and_trails_the_pen() -> None:
    doc, layer = _doc()
    brush = Brush(size=4, hardness=1.0, size_pressure=None, lazy_radius=15)
    stroke = Stroke(doc, layer, brush)
    stroke.add_point(50, 50)
    first = _alpha(doc, layer).copy()
    for dx, dy in [(5, 3), (-8, 2), (10, -6), (-3, -9)]:  # hand tremor inside the radius
        stroke.add_point(50 + dx, 50 + dy)
    np.testing.assert_array_equal(_alpha(doc, layer), first)
    stroke.add_point(150, 50)  # a real move: the brush follows, 15 px behind the pen
    a = _alpha(doc, layer)
    assert a[50, 130] == 255 and a[50, 140] == 0
    stroke.end()  # pen-up: the line reaches the pen
    assert (_alpha(doc, layer)[50, 50:151] == 255).all()


def test_repeating_the_last_point_at_lower_pressure_lays_no_dab_and_does_not_fail() -> None:
    """Pen-up often repeats the last position with pressure 0; after the stroke had
    accumulated distance, the shrinking spacing used to divide by the zero length."""
    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.layers import PixelLayer
    from sfumato.canvas.paint.brush import Brush

    doc = Document(64, 64)
    layer = PixelLayer("paint")
    editing.add_layer(doc, layer)
    stroke = Stroke(doc, layer, Brush(size=20, spacing=0.5, color=(255, 0, 0)))
    stroke.add_point(10, 10, 1.0)
    stroke.add_point(17, 10, 1.0)  # part of a spacing step accumulated
    before = layer.surface.read(doc.rect).copy()
    dirty = stroke.add_point(17, 10, 0.0)
    assert dirty.empty
    assert (layer.surface.read(doc.rect) == before).all()
    stroke.add_point(40, 10, 1.0)  # the stroke goes on normally afterwards
    stroke.end()
    assert layer.surface.read(doc.rect)[10, 30, 3] > 0

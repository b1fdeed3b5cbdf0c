"""The view transform (no Qt): zooming about a point, fitting, zoom steps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.desktop.viewport import MAX_ZOOM, MIN_ZOOM, Viewport, next_zoom_step


# Deterministic (derandomize, no example database) and no per-example deadline.
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    zoom=st.floats(0.05, 20), ox=st.floats(-5000, 5000), oy=st.floats(-5000, 5000),
    new=st.floats(0.05, 20), wx=st.floats(0, 2000), wy=st.floats(0, 2000),
)
def test_zoom_keeps_the_anchor_fixed(zoom, ox, oy, new, wx, wy) -> None:  # noqa: ANN001
    before = Viewport(zoom, ox, oy)
    after = before.zoomed_at(new, wx, wy)
    assert after.to_document(wx, wy) == pytest.approx(before.to_document(wx, wy), rel=1e-9, abs=1e-6)
    assert after.zoom == pytest.approx(new)


def test_round_trip_and_pan() -> None:
    v = Viewport(2.0, 10, -20)
    assert v.to_widget(*v.to_document(123.5, 77.25)) == pytest.approx((123.5, 77.25))
    assert v.panned(5, 6).to_widget(0, 0) == (15, -14)


def test_fit_centres_the_whole_document() -> None:
    v = Viewport.fit(4000, 2000, 1000, 800, margin=0)
    assert v.zoom == pytest.approx(0.25)
    x0, y0 = v.to_widget(0, 0)
    x1, y1 = v.to_widget(4000, 2000)
    assert (x0, x1) == pytest.approx((0, 1000))
    assert (y0 + y1) / 2 == pytest.approx(400)


def test_zoom_steps_snap_and_clamp() -> None:
    assert next_zoom_step(1.0, 4) == pytest.approx(2.0)
    assert next_zoom_step(1.0, -4) == pytest.approx(0.5)
    # From between two steps, one step in goes to the next step, not past it.
    z = next_zoom_step(1.1, 1)
    assert 1.1 < z <= 2 ** 0.25 + 1e-9
    assert next_zoom_step(MAX_ZOOM, 3) == MAX_ZOOM
    assert next_zoom_step(MIN_ZOOM, -3) == MIN_ZOOM
    assert Viewport().zoomed_at(1e9, 0, 0).zoom == MAX_ZOOM

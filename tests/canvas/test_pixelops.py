"""Coverage-weighted pixel maths against the straight-alpha source-over definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.canvas.pixels import pixelops

pixel = st.tuples(*[st.integers(0, 255)] * 4)


def _reference_over(dst: tuple[int, ...], color: tuple[int, int, int], cov: float) -> np.ndarray:
    """Porter-Duff source-over in premultiplied float64, returned straight (unrounded)."""
    da = dst[3] / 255
    a = cov + da * (1 - cov)
    if a == 0:
        return np.array([*dst[:3], 0], np.float64)
    rgb = (np.array(color) * cov + np.array(dst[:3]) * da * (1 - cov)) / a
    return np.array([*rgb, a * 255])


@settings(max_examples=200, deadline=None)
@given(dst=pixel, color=st.tuples(*[st.integers(0, 255)] * 3), cov=st.floats(0, 1))
def test_paint_color_is_source_over(dst: tuple[int, ...], color: tuple[int, int, int], cov: float) -> None:
    region = np.array([[dst]], np.uint8)
    out = pixelops.paint_color(region, color, np.array([[cov]], np.float32))[0, 0].astype(float)
    ref = _reference_over(dst, color, cov)
    assert abs(out[3] - ref[3]) <= 0.51
    if ref[3] >= 1:  # colour is only defined where there is some alpha
        assert np.abs(out[:3] - ref[:3]).max() <= 0.51 + 255 * 1e-4


def test_full_and_zero_coverage_are_exact() -> None:
    rng = np.random.default_rng(3)
    region = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    src = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    ones, zeros = np.ones((16, 16), np.float32), np.zeros((16, 16), np.float32)
    np.testing.assert_array_equal(pixelops.mix(region, src, ones), src)
    np.testing.assert_array_equal(pixelops.mix(region, src, zeros), region)
    np.testing.assert_array_equal(pixelops.paint_color(region, (1, 2, 3), zeros), region)
    painted = pixelops.paint_color(region, (1, 2, 3), ones)
    assert (painted == np.array([1, 2, 3, 255], np.uint8)).all()
    np.testing.assert_array_equal(pixelops.erase(region, zeros), region)
    assert (pixelops.erase(region, ones)[..., 3] == 0).all()


def test_mix_interpolates_premultiplied() -> None:
    region = np.array([[[255, 0, 0, 255]]], np.uint8)
    src = np.array([[[0, 0, 255, 0]]], np.uint8)  # transparent "blue": its colour has no weight
    out = pixelops.mix(region, src, np.array([[0.5]], np.float32))[0, 0]
    assert tuple(out[:3]) == (255, 0, 0) and out[3] == pytest.approx(128, abs=1)


def test_blend_over_with_coverage() -> None:
    region = np.array([[[0, 0, 0, 255]]], np.uint8)
    src = np.array([[[255, 255, 255, 255]]], np.uint8)
    out = pixelops.blend_over(region, src, np.array([[0.25]], np.float32))[0, 0]
    assert tuple(out) == (64, 64, 64, 255)


def test_into_variants_write_in_place_with_reused_scratch() -> None:
    scratch = pixelops.Scratch()
    tile = np.zeros((8, 8, 4), np.uint8)
    cov = np.full((3, 3), 0.5, np.float32)
    pixelops.paint_color_into(tile[2:5, 2:5], tile[2:5, 2:5].copy(), (200, 100, 0), cov, scratch)
    assert tuple(tile[3, 3]) == (200, 100, 0, 128) and tile[0, 0, 3] == 0
    pixelops.erase_into(tile[2:5, 2:5], tile[2:5, 2:5].copy(), cov, scratch)
    assert tile[3, 3, 3] == 64 and tuple(tile[3, 3, :3]) == (200, 100, 0)
    assert scratch.get("k", (2, 2)).shape == (2, 2)

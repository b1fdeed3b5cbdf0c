"""The denoise mask (grown and feathered with strength) and the paste mask."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from plandocs import document, layer, rgba
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import Role
from sfumato.planner.mask import denoise_grow, denoise_mask, mask_source, paste_mask


def square_mask(size: int = 200, lo: int = 60, hi: int = 140) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[lo:hi, lo:hi] = 1.0
    return m


def test_denoise_mask_grows_beyond_the_mask_and_keeps_the_core() -> None:
    m = square_mask()
    d = denoise_mask(m, 1.0)
    assert (d >= m).all()
    assert d[100, 58] > 0.5  # two pixels outside the edge: regenerated
    assert d[100, 30] == 0.0  # far outside: untouched
    assert ((d > 0) & (d < 1)).any()  # a soft ramp, not a hard edge


def test_denoise_growth_scales_with_strength() -> None:
    m = square_mask()
    weak, strong = denoise_mask(m, 0.2), denoise_mask(m, 1.0)
    assert (strong >= weak - 0.02).all()  # up to the disk kernel's discreteness
    assert (strong > 0).sum() > (weak > 0).sum()
    assert denoise_grow(m, 0.0) == 0.0
    assert np.array_equal(denoise_mask(m, 0.0), m)


def test_paste_mask_is_zero_outside_and_fades_inside() -> None:
    m = square_mask()
    p = paste_mask(m)
    assert (p[m == 0] == 0).all()
    assert (p <= m).all()
    assert p[100, 100] > 0.99  # the core is fully pasted
    row = p[100, 60:75]
    assert row[0] < 0.5 and (np.diff(row) >= -1e-6).all()  # rises inward


def test_paste_mask_keeps_thin_masks() -> None:
    m = np.zeros((64, 64), np.float32)
    m[30:33, 10:50] = 1.0  # three pixels tall
    p = paste_mask(m)
    assert p.max() >= 0.9 and (p[m == 0] == 0).all()


def test_soft_mask_values_are_an_upper_bound_for_pasting() -> None:
    m = np.zeros((100, 100), np.float32)
    m[20:80, 20:80] = 0.5
    assert paste_mask(m).max() <= 0.5 + 1e-6


def test_mask_source_is_the_union_of_visible_mask_layers() -> None:
    a = layer("a", rgba(10, 10, alpha=100), role=Role.INPAINT_MASK, x=0, y=0)
    b = layer("b", rgba(10, 10, alpha=200), role=Role.INPAINT_MASK, x=5, y=5)
    hidden = layer("c", rgba(10, 10), role=Role.INPAINT_MASK, x=40, y=40, visible=False)
    doc = document(64, 64, a, b, hidden)
    source = mask_source(doc)
    assert source is not None
    assert source.bounds == Rect(0, 0, 15, 15)
    m = source.read(Rect(0, 0, 64, 64))
    assert abs(m[2, 2] - 100 / 255) < 1e-6
    assert abs(m[7, 7] - 200 / 255) < 1e-6  # max of the overlap
    assert m[45, 45] == 0.0


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(w=st.integers(1, 96), h=st.integers(1, 96), feather=st.floats(0, 20), seed=st.integers(0, 10_000))
def test_the_paste_mask_is_exactly_zero_wherever_the_mask_is(w: int, h: int, feather: float, seed: int) -> None:
    """What keeps every pixel outside an inpaint mask byte-identical (the placement pastes
    through it; the engine pastes nothing)."""
    rng = np.random.default_rng(seed)
    mask = np.where(rng.random((h, w)) < 0.3, rng.random((h, w)), 0.0).astype(np.float32)
    alpha = paste_mask(mask, feather)
    assert not alpha[mask == 0].any()
    assert (alpha <= mask + 1e-6).all() and (alpha >= 0).all()

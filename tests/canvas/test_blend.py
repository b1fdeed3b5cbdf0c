"""Blend modes against an independent, per-pixel transcription of the W3C definitions.

The reference below is written from the text of *Compositing and Blending Level 1*
(straight alpha, float64, one pixel at a time, with the spec's if/else branches and its
max/mid/min SetSat), never by calling the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.pixels import blendmath
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.render.composite import flatten

Color = tuple[float, float, float]


# -- reference: separable B(Cb, Cs) on one channel -----------------------------------------
def ref_multiply(cb: float, cs: float) -> float:
    return cb * cs


def ref_screen(cb: float, cs: float) -> float:
    return cb + cs - cb * cs


def ref_hard_light(cb: float, cs: float) -> float:
    if cs <= 0.5:
        return ref_multiply(cb, 2 * cs)
    return ref_screen(cb, 2 * cs - 1)


def ref_overlay(cb: float, cs: float) -> float:
    return ref_hard_light(cs, cb)


def ref_color_dodge(cb: float, cs: float) -> float:
    if cb == 0:
        return 0.0
    if cs == 1:
        return 1.0
    return min(1.0, cb / (1 - cs))


def ref_color_burn(cb: float, cs: float) -> float:
    if cb == 1:
        return 1.0
    if cs == 0:
        return 0.0
    return 1 - min(1.0, (1 - cb) / cs)


def ref_soft_light(cb: float, cs: float) -> float:
    if cs <= 0.5:
        return cb - (1 - 2 * cs) * cb * (1 - cb)
    d = ((16 * cb - 12) * cb + 4) * cb if cb <= 0.25 else math.sqrt(cb)
    return cb + (2 * cs - 1) * (d - cb)


SEPARABLE = {
    BlendMode.NORMAL: lambda cb, cs: cs,
    BlendMode.MULTIPLY: ref_multiply,
    BlendMode.SCREEN: ref_screen,
    BlendMode.OVERLAY: ref_overlay,
    BlendMode.DARKEN: min,
    BlendMode.LIGHTEN: max,
    BlendMode.COLOR_DODGE: ref_color_dodge,
    BlendMode.COLOR_BURN: ref_color_burn,
    BlendMode.HARD_LIGHT: ref_hard_light,
    BlendMode.SOFT_LIGHT: ref_soft_light,
    BlendMode.DIFFERENCE: lambda cb, cs: abs(cb - cs),
}


# -- reference: non-separable, literally as the spec's pseudo-code --------------------------
def ref_lum(c: Color) -> float:
    return 0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2]


def ref_clip_color(c: Color) -> Color:
    lu = ref_lum(c)
    n = min(c)
    x = max(c)
    out = list(c)
    if n < 0:
        out = [lu + (ch - lu) * lu / (lu - n) for ch in out]
    if x > 1:
        out = [lu + (ch - lu) * (1 - lu) / (x - lu) for ch in out]
    return (out[0], out[1], out[2])


def ref_set_lum(c: Color, lu: float) -> Color:
    d = lu - ref_lum(c)
    return ref_clip_color((c[0] + d, c[1] + d, c[2] + d))


def ref_sat(c: Color) -> float:
    return max(c) - min(c)


def ref_set_sat(c: Color, s: float) -> Color:
    order = sorted(range(3), key=lambda i: c[i])  # indices of min, mid, max
    i_min, i_mid, i_max = order
    out = [0.0, 0.0, 0.0]
    if c[i_max] > c[i_min]:
        out[i_mid] = (c[i_mid] - c[i_min]) * s / (c[i_max] - c[i_min])
        out[i_max] = s
    else:
        out[i_mid] = out[i_max] = 0.0
    out[i_min] = 0.0
    return (out[0], out[1], out[2])


NON_SEPARABLE = {
    BlendMode.HUE: lambda cb, cs: ref_set_lum(ref_set_sat(cs, ref_sat(cb)), ref_lum(cb)),
    BlendMode.SATURATION: lambda cb, cs: ref_set_lum(ref_set_sat(cb, ref_sat(cs)), ref_lum(cb)),
    BlendMode.COLOR: lambda cb, cs: ref_set_lum(cs, ref_lum(cb)),
    BlendMode.LUMINOSITY: lambda cb, cs: ref_set_lum(cb, ref_lum(cs)),
}


def ref_pixel(mode: BlendMode, cb: Color, ab: float, cs: Color, as_: float) -> tuple[Color, float]:
    """Composite one straight-alpha source pixel onto one backdrop pixel; straight result."""
    if mode.is_porter_duff:
        if mode is BlendMode.PLUS:
            ao = min(1.0, as_ + ab)
            co = [min(1.0, as_ * s + ab * b) for s, b in zip(cs, cb)]
        elif mode is BlendMode.DST_IN:
            ao = ab * as_
            co = [ab * b * as_ for b in cb]
        elif mode is BlendMode.DST_OUT:
            ao = ab * (1 - as_)
            co = [ab * b * (1 - as_) for b in cb]
        elif mode is BlendMode.SRC_ATOP:
            ao = ab
            co = [as_ * s * ab + ab * b * (1 - as_) for s, b in zip(cs, cb)]
        else:  # DST_ATOP
            ao = as_
            co = [as_ * s * (1 - ab) + ab * b * as_ for s, b in zip(cs, cb)]
    else:
        if mode in NON_SEPARABLE:
            mixed = NON_SEPARABLE[mode](cb, cs)
        else:
            mixed = tuple(SEPARABLE[mode](b, s) for b, s in zip(cb, cs))
        # Cs' = (1 - αb)·Cs + αb·B(Cb, Cs), then source-over.
        cs2 = [(1 - ab) * s + ab * m for s, m in zip(cs, mixed)]
        ao = as_ + ab * (1 - as_)
        co = [as_ * s2 + (1 - as_) * ab * b for s2, b in zip(cs2, cb)]
    if ao == 0:
        return (0.0, 0.0, 0.0), 0.0
    return (co[0] / ao, co[1] / ao, co[2] / ao), ao


def ref_composite_u8(
    mode: BlendMode, back: np.ndarray, src: np.ndarray, opacity: float
) -> np.ndarray:
    out = np.zeros_like(back)
    for i in range(back.shape[0]):
        cb = tuple(float(v) / 255 for v in back[i, :3])
        cs = tuple(float(v) / 255 for v in src[i, :3])
        color, alpha = ref_pixel(mode, cb, back[i, 3] / 255, cs, src[i, 3] / 255 * opacity)  # type: ignore[arg-type]
        out[i, :3] = [round(v * 255) for v in color]
        out[i, 3] = round(alpha * 255)
    return out


def random_pixels(rng: np.random.Generator, n: int) -> np.ndarray:
    px = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    # Make the alpha edge cases frequent: transparent, opaque, and extreme colours.
    px[: n // 8, 3] = 0
    px[n // 8 : n // 4, 3] = 255
    px[n // 4 : n // 3, :3] = rng.choice(np.array([0, 255], np.uint8), (n // 3 - n // 4, 3))
    return px[rng.permutation(n)]


def composite_via_document(
    mode: BlendMode, back: np.ndarray, src: np.ndarray, opacity: float
) -> np.ndarray:
    n = back.shape[0]
    doc = Document(n, 1)
    doc._raw_insert(PixelLayer("back", TiledSurface.from_array(back[None])))
    doc._raw_insert(
        PixelLayer("src", TiledSurface.from_array(src[None]), blend=mode, opacity=opacity)
    )
    return flatten(doc)[0]


def assert_close_straight(got: np.ndarray, want: np.ndarray, tol: int) -> None:
    # Colour is meaningless where the result is transparent: compare it where alpha > 0.
    assert np.abs(got[:, 3].astype(int) - want[:, 3]).max() <= 1
    visible = (want[:, 3] > 1) & (got[:, 3] > 1)
    diff = np.abs(got[visible, :3].astype(int) - want[visible, :3])
    worst = int(diff.max()) if diff.size else 0
    assert worst <= tol, f"worst colour error {worst} > {tol}"


@pytest.mark.parametrize("mode", list(BlendMode), ids=lambda m: m.value)
@pytest.mark.parametrize("opacity", [1.0, 0.6])
def test_every_mode_matches_w3c_reference(mode: BlendMode, opacity: float) -> None:
    rng = np.random.default_rng(list(BlendMode).index(mode) * 10 + int(opacity * 10))
    back = random_pixels(rng, 400)
    src = random_pixels(rng, 400)
    got = composite_via_document(mode, back, src, opacity)
    want = ref_composite_u8(mode, back, src, opacity)
    # Low-alpha results amplify the uint8 rounding of the inputs when un-premultiplied.
    assert_close_straight(got, want, tol=1 if mode is BlendMode.NORMAL else 2)


@pytest.mark.parametrize(
    "mode", [m for m in BlendMode if not m.is_porter_duff], ids=lambda m: m.value
)
def test_blend_functions_on_floats(mode: BlendMode) -> None:
    if mode is BlendMode.NORMAL:
        return
    rng = np.random.default_rng(7)
    cb = rng.random((3, 500)).astype(np.float32)  # channel first, as blendmath works
    cs = rng.random((3, 500)).astype(np.float32)
    got = blendmath.BLEND_FUNCTIONS[mode](cb, cs)
    for i in range(cb.shape[1]):
        b = tuple(float(v) for v in cb[:, i])
        s = tuple(float(v) for v in cs[:, i])
        if mode in NON_SEPARABLE:
            want = NON_SEPARABLE[mode](b, s)  # type: ignore[arg-type]
        else:
            want = tuple(SEPARABLE[mode](x, y) for x, y in zip(b, s))
        np.testing.assert_allclose(got[:, i], want, atol=2e-5)


def test_known_values() -> None:
    half = np.full((3, 1), 0.5, np.float32)
    assert blendmath.multiply(half, half)[0, 0] == pytest.approx(0.25)
    assert blendmath.screen(half, half)[0, 0] == pytest.approx(0.75)
    b = np.array([0.2, 0.9, 0.0], np.float32)
    s = np.array([0.7, 0.4, 1.0], np.float32)
    np.testing.assert_allclose(blendmath.difference(b, s), [0.5, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(blendmath.darken(b, s), [0.2, 0.4, 0.0])
    np.testing.assert_allclose(blendmath.lighten(b, s), [0.7, 0.9, 1.0])
    # The spec's special cases: dodge of black stays black, burn of white stays white.
    zero, one = np.zeros(1, np.float32), np.ones(1, np.float32)
    assert blendmath.color_dodge(zero, one)[0] == 0
    assert blendmath.color_burn(one, zero)[0] == 1
    # Multiply of opaque 50% grey over opaque 50% grey, end to end in uint8: 128·128/255 ≈ 64.
    grey = np.array([[128, 128, 128, 255]], np.uint8)
    out = composite_via_document(BlendMode.MULTIPLY, grey, grey, 1.0)
    assert tuple(out[0]) == (64, 64, 64, 255)
    # Screen of two opaque greys.
    out = composite_via_document(BlendMode.SCREEN, grey, grey, 1.0)
    assert tuple(out[0]) == (192, 192, 192, 255)
    # Difference of white over red.
    red = np.array([[255, 0, 0, 255]], np.uint8)
    white = np.array([[255, 255, 255, 255]], np.uint8)
    assert tuple(composite_via_document(BlendMode.DIFFERENCE, red, white, 1.0)[0]) == (
        0,
        255,
        255,
        255,
    )


@pytest.mark.parametrize(
    "mode", [BlendMode.HUE, BlendMode.SATURATION, BlendMode.COLOR, BlendMode.LUMINOSITY]
)
def test_non_separable_properties(mode: BlendMode) -> None:
    rng = np.random.default_rng(3)
    cb = rng.random((3, 2000)).astype(np.float32)
    cs = rng.random((3, 2000)).astype(np.float32)
    out = blendmath.BLEND_FUNCTIONS[mode](cb, cs)
    assert out.min() >= -1e-5 and out.max() <= 1 + 1e-5
    lum_source = cs if mode is BlendMode.LUMINOSITY else cb
    # SetLum (ClipColor included) keeps the luminosity it was given.
    np.testing.assert_allclose(blendmath.lum(out), blendmath.lum(lum_source), atol=1e-5)
    if mode is BlendMode.COLOR:
        # Colour keeps the source's saturation where SetLum needed no clipping.
        shifted = cs + (blendmath.lum(cb) - blendmath.lum(cs))
        inside = np.all((shifted >= 0) & (shifted <= 1), axis=0)
        assert inside.sum() > 100
        np.testing.assert_allclose(
            blendmath.sat(out)[0, inside], blendmath.sat(cs)[0, inside], atol=1e-5
        )
    if mode is BlendMode.SATURATION:
        # Saturation keeps the backdrop's hue order: the largest channel stays the largest.
        grey_free = blendmath.sat(cs)[0] > 0.05
        agree = np.argmax(out, axis=0) == np.argmax(cb, axis=0)
        assert agree[grey_free].mean() > 0.99
    if mode is BlendMode.HUE:
        # A grey source has no hue: the result is the backdrop's luminosity as grey.
        grey = np.full_like(cs, 0.5)
        out = blendmath.hue(cb, grey)
        np.testing.assert_allclose(out, np.repeat(blendmath.lum(cb), 3, axis=0), atol=1e-5)


def test_set_sat_matches_spec_cases_including_ties() -> None:
    cases = [(0.2, 0.2, 0.8), (0.8, 0.8, 0.1), (0.5, 0.5, 0.5), (0.1, 0.4, 0.9), (0.9, 0.4, 0.1)]
    c = np.array(cases, np.float32).T
    got = blendmath.set_sat(c, np.full((1, len(cases)), 0.6, np.float32))
    for i, case in enumerate(cases):
        np.testing.assert_allclose(got[:, i], ref_set_sat(case, 0.6), atol=1e-6)  # type: ignore[arg-type]


def test_porter_duff_coverage() -> None:
    red = np.array([[255, 0, 0, 255]], np.uint8)
    blue = np.array([[0, 0, 255, 255]], np.uint8)
    clear = np.zeros((1, 4), np.uint8)
    half_blue = np.array([[0, 0, 255, 128]], np.uint8)

    def run(mode: BlendMode, back: np.ndarray, src: np.ndarray) -> tuple[int, ...]:
        return tuple(int(v) for v in composite_via_document(mode, back, src, 1.0)[0])

    assert run(BlendMode.DST_IN, red, blue) == (255, 0, 0, 255)  # keeps backdrop under source
    assert run(BlendMode.DST_IN, red, clear)[3] == 0  # no source: backdrop cleared
    assert run(BlendMode.DST_OUT, red, blue)[3] == 0
    assert run(BlendMode.DST_OUT, red, clear) == (255, 0, 0, 255)
    assert run(BlendMode.DST_OUT, red, half_blue) == (255, 0, 0, 127)
    assert run(BlendMode.SRC_ATOP, red, half_blue)[3] == 255  # alpha stays the backdrop's
    assert run(BlendMode.SRC_ATOP, clear, blue)[3] == 0  # nothing to paint onto
    assert run(BlendMode.DST_ATOP, clear, blue) == (0, 0, 255, 255)
    assert run(BlendMode.DST_ATOP, red, half_blue) == (255, 0, 0, 128)  # backdrop inside source
    assert run(
        BlendMode.PLUS,
        np.array([[100, 0, 0, 255]], np.uint8),
        np.array([[200, 50, 0, 255]], np.uint8),
    ) == (255, 50, 0, 255)


def test_premultiply_round_trip_is_exact() -> None:
    rng = np.random.default_rng(11)
    px = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    px[..., 3] = np.maximum(px[..., 3], 1)
    back = blendmath.unpremultiply(blendmath.premultiply(px))
    assert np.array_equal(back, px)


def test_packed_and_strided_conversions_agree() -> None:
    rng = np.random.default_rng(12)
    px = rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)
    strided = px[:, ::2]  # not viewable as packed 32-bit words: the fallback path
    dense = np.ascontiguousarray(strided)
    np.testing.assert_array_equal(
        blendmath.premultiply(strided, 0.7), blendmath.premultiply(dense, 0.7)
    )
    np.testing.assert_array_equal(
        blendmath.straight_from_u8(strided), blendmath.straight_from_u8(dense)
    )
    np.testing.assert_allclose(
        blendmath.straight_from_u8(dense), dense.transpose(2, 0, 1)[:3] / 255, atol=1e-7
    )


@pytest.mark.parametrize("mode", list(blendmath.PREMULTIPLIED_TERMS), ids=lambda m: m.value)
def test_premultiplied_terms_equal_alpha_weighted_reference(mode: BlendMode) -> None:
    """The division-free forms give αs·αb·B(Cb, Cs) of the spec's B."""
    rng = np.random.default_rng(31)
    n = 400
    cb, cs = rng.random((3, n)), rng.random((3, n))
    ab, as_ = rng.random(n), rng.random(n)
    ab[:40], as_[40:80] = 0.0, 0.0  # transparent backdrop / source
    ab[80:120], as_[120:160] = 1.0, 1.0
    got = blendmath.PREMULTIPLIED_TERMS[mode](
        (cb * ab).astype(np.float32),
        ab.astype(np.float32),
        (cs * as_).astype(np.float32),
        as_.astype(np.float32),
    )
    for i in range(n):
        want = [as_[i] * ab[i] * SEPARABLE[mode](b, s) for b, s in zip(cb[:, i], cs[:, i])]
        np.testing.assert_allclose(got[:, i], want, atol=1e-5)

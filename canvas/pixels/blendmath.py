"""Per-pixel compositing formulas: W3C Compositing and Blending Level 1, vectorised in numpy.

Layout: everything here works on **planar, premultiplied float32** arrays of shape
``(4, h, w)`` — channel first (R, G, B, A planes), values in ``[0, 1]``, ``c = α·C`` —
because numpy is several times faster on contiguous planes than on interleaved pixels.
The blend functions ``B(Cb, Cs)`` take and return **straight** colours of shape
``(3, ...)`` (channel first), exactly as the spec writes them.

For a blend mode with blend function ``B`` the spec's general formula is

    Cs' = (1 - αb)·Cs + αb·B(Cb, Cs)          (mix the source with the backdrop)
    co  = αs·Cs' + (1 - αs)·αb·Cb             (then source-over)
        = cs·(1 - αb) + cb·(1 - αs) + αs·αb·B(Cb, Cs)
    αo  = αs + αb·(1 - αs)

and the Porter-Duff operators (``plus``, ``dst-in``, ``dst-out``, ``src-atop``,
``dst-atop``) replace the source-over step with their own ``Fa``/``Fb`` factors and no
blending. A layer's opacity multiplies the source (its alpha and its premultiplied colour).

Conversions to and from the document's storage format (interleaved straight-alpha RGBA
uint8, ``(h, w, 4)``) are :func:`premultiply` and :func:`unpremultiply`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import numpy as np
from sfumato.canvas.pixels.blend import BlendMode

log = logging.getLogger(__name__)

BlendFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Comparisons against the spec's exact 0 and 1 use this slack: colours that went through
# float32 premultiplication come back as 0.99999994 instead of 1, which would otherwise
# flip the color-dodge/color-burn special cases.
_EPS = np.float32(1e-5)
_INV255 = np.float32(1.0 / 255.0)
_ONE = np.float32(1.0)
_TINY = np.float32(1e-30)
_LITTLE_ENDIAN = sys.byteorder == "little"


# -- storage conversions ---------------------------------------------------------------
def packed_words(pixels: np.ndarray) -> np.ndarray | None:
    """RGBA uint8 ``(h, w, 4)`` seen as ``(h, w)`` uint32 (R in the low byte), or None when
    the memory layout does not allow it. Extracting channels from packed words runs on
    contiguous memory, several times faster than numpy's stride-4 byte access."""
    if not _LITTLE_ENDIAN or pixels.strides[-1] != 1 or pixels.strides[-2] != 4:
        return None
    return pixels.view(np.uint32)[..., 0]


def premultiply(pixels: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Straight RGBA uint8 ``(h, w, 4)`` -> a new planar premultiplied float32 ``(4, h, w)``.

    ``opacity`` scales the result (colour and alpha), as a layer's opacity does.
    """
    h, w = pixels.shape[:2]
    out = np.empty((4, h, w), np.float32)
    alpha = out[3]
    words = packed_words(pixels)
    if words is None:
        planes = pixels.transpose(2, 0, 1)
        np.multiply(planes[3], _INV255 * np.float32(opacity), out=alpha, dtype=np.float32)
        np.multiply(planes[:3], alpha * _INV255, out=out[:3], dtype=np.float32)
        return out
    tmp = np.empty((h, w), np.uint32)
    np.right_shift(words, 24, out=tmp)
    np.multiply(tmp, _INV255 * np.float32(opacity), out=alpha, dtype=np.float32)
    scale = alpha * _INV255
    for c in range(3):
        np.right_shift(words, 8 * c, out=tmp)
        tmp &= 0xFF
        np.multiply(tmp, scale, out=out[c], dtype=np.float32)
    return out


def straight_from_u8(pixels: np.ndarray) -> np.ndarray:
    """The straight colours of RGBA uint8 ``(h, w, 4)`` as planar float32 ``(3, h, w)``."""
    h, w = pixels.shape[:2]
    words = packed_words(pixels)
    if words is None:
        return np.multiply(pixels.transpose(2, 0, 1)[:3], _INV255, dtype=np.float32)
    out = np.empty((3, h, w), np.float32)
    tmp = np.empty((h, w), np.uint32)
    for c in range(3):
        np.right_shift(words, 8 * c, out=tmp)
        tmp &= 0xFF
        np.multiply(tmp, _INV255, out=out[c], dtype=np.float32)
    return out


def from_opaque(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Planar float32 of uint8 RGBA whose alpha is all 255 (straight == premultiplied)."""
    h, w = pixels.shape[:2]
    if out is None:
        out = np.empty((4, h, w), np.float32)
    np.multiply(pixels.transpose(2, 0, 1), _INV255, out=out, dtype=np.float32)
    return out


def unpremultiply(premul: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Planar premultiplied float32 ``(4, h, w)`` -> straight RGBA uint8 ``(h, w, 4)``
    (rounded, clamped). Fully transparent pixels come out as ``(0, 0, 0, 0)``."""
    h, w = premul.shape[1:]
    if out is None:
        out = np.empty((h, w, 4), np.uint8)
    planes = out.transpose(2, 0, 1)
    alpha = premul[3]
    inv = np.maximum(alpha, _TINY)
    np.divide(np.float32(255.0), inv, out=inv)
    rgb = premul[:3] * inv
    rgb += np.float32(0.5)
    np.clip(rgb, 0.0, 255.0, out=rgb)
    np.copyto(planes[:3], rgb, casting="unsafe")
    a = alpha * np.float32(255.0)
    a += np.float32(0.5)
    np.clip(a, 0.0, 255.0, out=a)
    np.copyto(planes[3], a, casting="unsafe")
    return out


def straight(premul: np.ndarray) -> np.ndarray:
    """Straight colours ``(3, h, w)`` of a planar premultiplied array, clamped to [0, 1];
    0 where α = 0."""
    inv = np.maximum(premul[3], _TINY)
    np.divide(_ONE, inv, out=inv)
    rgb = premul[:3] * inv
    np.minimum(rgb, _ONE, out=rgb)
    return rgb


# -- separable blend functions (straight colours, any shape) -----------------------------
def multiply(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return cb * cs


def screen(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return cb + cs - cb * cs


def hard_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    cs2 = cs * np.float32(2.0)
    return np.where(cs <= 0.5, multiply(cb, cs2), screen(cb, cs2 - np.float32(1.0)))


def overlay(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return hard_light(cs, cb)


def darken(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return np.minimum(cb, cs)


def lighten(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return np.maximum(cb, cs)


def color_dodge(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.minimum(np.float32(1.0), cb / (np.float32(1.0) - cs))
    out = np.where(cs >= 1 - _EPS, np.float32(1.0), ratio)
    return np.where(cb <= _EPS, np.float32(0.0), out)


def color_burn(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.float32(1.0) - np.minimum(np.float32(1.0), (np.float32(1.0) - cb) / cs)
    out = np.where(cs <= _EPS, np.float32(0.0), ratio)
    return np.where(cb >= 1 - _EPS, np.float32(1.0), out)


def soft_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    d = np.where(
        cb <= 0.25, ((np.float32(16.0) * cb - np.float32(12.0)) * cb + 4) * cb, np.sqrt(cb)
    )
    low = cb - (np.float32(1.0) - np.float32(2.0) * cs) * cb * (np.float32(1.0) - cb)
    high = cb + (np.float32(2.0) * cs - np.float32(1.0)) * (d - cb)
    return np.where(cs <= 0.5, low, high)


def difference(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return np.abs(cb - cs)


# -- non-separable helpers (the spec's Lum / ClipColor / SetLum / Sat / SetSat) ----------
def lum(c: np.ndarray) -> np.ndarray:
    """Luminosity ``0.3 R + 0.59 G + 0.11 B`` of ``(3, ...)`` colours, shape ``(1, ...)``."""
    return c[0:1] * np.float32(0.3) + c[1:2] * np.float32(0.59) + c[2:3] * np.float32(0.11)


def clip_color(c: np.ndarray) -> np.ndarray:
    """Bring out-of-gamut colours back into [0, 1] keeping their luminosity (spec's ClipColor)."""
    lu = lum(c)
    n = c.min(axis=0, keepdims=True)
    x = c.max(axis=0, keepdims=True)
    # When n < 0 (or x > 1) the luminosity lies strictly inside (n, x), so the spec's
    # denominators are positive; the floor only keeps float noise from dividing by zero.
    tiny = np.float32(1e-12)
    low = lu + (c - lu) * lu / np.maximum(lu - n, tiny)
    high = lu + (c - lu) * (np.float32(1.0) - lu) / np.maximum(x - lu, tiny)
    c = np.where(n < 0, low, c)
    return np.where(x > 1, high, c)


def set_lum(c: np.ndarray, lu: np.ndarray) -> np.ndarray:
    return clip_color(c + (lu - lum(c)))


def sat(c: np.ndarray) -> np.ndarray:
    return c.max(axis=0, keepdims=True) - c.min(axis=0, keepdims=True)


def set_sat(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Spec's SetSat: max -> s, min -> 0, mid scaled proportionally; grey -> 0.

    Vectorised as ``(C - min)·s / (max - min)``, which gives exactly the spec's three
    cases for each of max, mid and min (ties included).
    """
    lo = c.min(axis=0, keepdims=True)
    rng = c.max(axis=0, keepdims=True) - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (c - lo) * s / rng
    return np.where(rng > 0, out, np.float32(0.0))


def hue(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return set_lum(set_sat(cs, sat(cb)), lum(cb))


def saturation(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return set_lum(set_sat(cb, sat(cs)), lum(cb))


def color(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return set_lum(cs, lum(cb))


def luminosity(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return set_lum(cb, lum(cs))


BLEND_FUNCTIONS: dict[BlendMode, BlendFunction] = {
    BlendMode.MULTIPLY: multiply,
    BlendMode.SCREEN: screen,
    BlendMode.OVERLAY: overlay,
    BlendMode.DARKEN: darken,
    BlendMode.LIGHTEN: lighten,
    BlendMode.COLOR_DODGE: color_dodge,
    BlendMode.COLOR_BURN: color_burn,
    BlendMode.HARD_LIGHT: hard_light,
    BlendMode.SOFT_LIGHT: soft_light,
    BlendMode.DIFFERENCE: difference,
    BlendMode.HUE: hue,
    BlendMode.SATURATION: saturation,
    BlendMode.COLOR: color,
    BlendMode.LUMINOSITY: luminosity,
}
"""``B(Cb, Cs)`` for every mode that mixes colours (normal's ``B`` is ``Cs`` and is special-cased)."""


# -- separable modes in premultiplied form -------------------------------------------------
# For these modes αs·αb·B(Cb, Cs) needs no division back to straight colours (cs = αs·Cs,
# cb = αb·Cb); the results are the spec's, regrouped. Arguments are planar: colours
# (3, h, w), alphas (h, w).
def _pm_multiply(cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray) -> np.ndarray:
    return cs * cb


def _pm_screen(cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray) -> np.ndarray:
    # αs·αb·(Cb + Cs − Cb·Cs)
    out = cb * as_
    out += cs * ab
    out -= cs * cb
    return out


def _pm_darken(cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray) -> np.ndarray:
    return np.minimum(cb * as_, cs * ab)


def _pm_lighten(cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray) -> np.ndarray:
    return np.maximum(cb * as_, cs * ab)


def _pm_difference(cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray) -> np.ndarray:
    out = cb * as_
    out -= cs * ab
    return np.abs(out, out=out)


def _pm_hard_light_of(
    cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray, low: np.ndarray
) -> np.ndarray:
    # low: 2·αs·αb·Cb·Cs; high: αs·αb − 2·(αb − cb)·(αs − cs)
    two_cs_cb = cs * cb
    two_cs_cb *= np.float32(2.0)
    high = (ab - cb) * (as_ - cs)
    high *= np.float32(-2.0)
    high += as_ * ab
    return np.where(low, two_cs_cb, high)


def _pm_hard_light(cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray) -> np.ndarray:
    return _pm_hard_light_of(cb, ab, cs, as_, cs * np.float32(2.0) <= as_)  # Cs <= 0.5


def _pm_overlay(cb: np.ndarray, ab: np.ndarray, cs: np.ndarray, as_: np.ndarray) -> np.ndarray:
    return _pm_hard_light_of(cb, ab, cs, as_, cb * np.float32(2.0) <= ab)  # Cb <= 0.5


PremultipliedTerm = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

PREMULTIPLIED_TERMS: dict[BlendMode, PremultipliedTerm] = {
    BlendMode.MULTIPLY: _pm_multiply,
    BlendMode.SCREEN: _pm_screen,
    BlendMode.DARKEN: _pm_darken,
    BlendMode.LIGHTEN: _pm_lighten,
    BlendMode.DIFFERENCE: _pm_difference,
    BlendMode.HARD_LIGHT: _pm_hard_light,
    BlendMode.OVERLAY: _pm_overlay,
}
"""``αs·αb·B(Cb, Cs)`` from premultiplied inputs, for the modes where that needs no division."""

NEEDS_STRAIGHT = frozenset(m for m in BLEND_FUNCTIONS if m not in PREMULTIPLIED_TERMS)
"""Modes whose compositing needs the source's straight colours."""

CLEARS_WITHOUT_SOURCE = frozenset({BlendMode.DST_IN, BlendMode.DST_ATOP})
"""Ops whose result is transparent where the source is: a missing (transparent) source
tile still changes the backdrop, so such layers affect the whole canvas."""


def clears_without_source(mode: BlendMode) -> bool:
    return mode in CLEARS_WITHOUT_SOURCE


# -- compositing ---------------------------------------------------------------------------
def blend_into(
    dst: np.ndarray,
    src: np.ndarray,
    mode: BlendMode,
    opacity: float = 1.0,
    src_straight: np.ndarray | None = None,
) -> None:
    """Composite ``src`` onto ``dst`` in place with ``mode`` at ``opacity``.

    ``dst`` and ``src`` are planar premultiplied float32 ``(4, h, w)`` arrays in [0, 1]
    covering the same pixels; ``src`` is not modified. ``src_straight`` optionally gives
    ``src``'s straight colours ``(3, h, w)`` (saves a division when the caller has them).
    """
    op = np.float32(opacity)
    if mode is BlendMode.NORMAL:
        a_s = src[3] * op if opacity != 1.0 else src[3]
        dst *= _ONE - a_s
        if opacity != 1.0:
            dst += src * op
        else:
            dst += src
        return
    term = PREMULTIPLIED_TERMS.get(mode)
    if term is not None:
        a_s = src[3] * op if opacity != 1.0 else src[3]
        c_s = src[:3] * op if opacity != 1.0 else src[:3]
        a_b = dst[3].copy()
        c_b = dst[:3]
        mixed = term(c_b, a_b, c_s, a_s)
        # co = cs·(1 - αb) + cb·(1 - αs) + αs·αb·B
        c_b *= _ONE - a_s
        c_b += c_s * (_ONE - a_b)
        c_b += mixed
        dst[3] = a_s + a_b - a_s * a_b
        return
    blend = BLEND_FUNCTIONS.get(mode)
    if blend is not None:
        a_s = src[3] * op if opacity != 1.0 else src[3]
        a_b = dst[3].copy()
        cs_straight = straight(src) if src_straight is None else src_straight
        mixed = blend(straight(dst), cs_straight)
        mixed *= a_s * a_b
        # co = cs·(1 - αb) + cb·(1 - αs) + αs·αb·B
        c_b = dst[:3]
        c_b *= _ONE - a_s
        k = _ONE - a_b
        if opacity != 1.0:
            k *= op
        c_b += src[:3] * k
        c_b += mixed
        dst[3] = a_s + a_b - a_s * a_b
        return
    _porter_duff(dst, src, mode, op)


def _porter_duff(dst: np.ndarray, src: np.ndarray, mode: BlendMode, op: np.float32) -> None:
    a_s = src[3] * op
    if mode is BlendMode.PLUS:  # co = cs + cb, αo = αs + αb (clamped)
        dst += src * op
        np.minimum(dst, _ONE, out=dst)
    elif mode is BlendMode.DST_IN:  # co = cb·αs, αo = αb·αs
        dst *= a_s
    elif mode is BlendMode.DST_OUT:  # co = cb·(1 - αs), αo = αb·(1 - αs)
        dst *= _ONE - a_s
    elif mode is BlendMode.SRC_ATOP:  # co = cs·αb + cb·(1 - αs), αo = αb
        a_b = dst[3].copy()
        dst[:3] *= _ONE - a_s
        dst[:3] += src[:3] * (op * a_b)
    elif mode is BlendMode.DST_ATOP:  # co = cs·(1 - αb) + cb·αs, αo = αs
        a_b = dst[3].copy()
        dst[:3] *= a_s
        dst[:3] += src[:3] * (op * (_ONE - a_b))
        dst[3] = a_s
    else:  # pragma: no cover - every BlendMode is handled above
        raise ValueError(f"no compositing formula for {mode}")


def over(dst: np.ndarray, top: np.ndarray) -> None:
    """Source-over of planar premultiplied ``top`` onto ``dst``, in place."""
    dst *= _ONE - top[3]
    dst += top

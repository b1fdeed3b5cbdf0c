"""Coverage-weighted pixel operations on straight-alpha RGBA uint8 regions.

These are the building blocks of painting (brush dabs, fills, erasing, pasting results):
each takes a ``(h, w, 4)`` **straight-alpha uint8** region and a ``(h, w)`` **float32
coverage in [0, 1]** and returns a new uint8 region. The mixing is done in float32 with
premultiplied colour and converted back to straight alpha with rounding, so painting an
opaque colour at full coverage gives exactly that colour.

They edit one layer's pixels and know no blend mode; compositing layers with blend modes
is :mod:`sfumato.canvas.pixels.blendmath` (formulas) and :mod:`sfumato.canvas.render.composite` (the tree).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_EPS = np.float32(1e-6)


def _to_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(values + np.float32(0.5), 0, 255).astype(np.uint8)


class Scratch:
    """Reusable float32 work buffers for the ``*_into`` functions.

    Painting allocates the same few arrays for every dab; arrays above the C allocator's
    mmap threshold (~128 KiB: a 180 px dab) are fresh pages each time, which costs more
    than the arithmetic. A stroke keeps one ``Scratch`` and reuses its buffers.
    """

    __slots__ = ("_buffers",)

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float32 array of ``shape`` (contents undefined)."""
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size:
            buf = self._buffers[name] = np.empty(max(size, 1), np.float32)
        return buf[:size].reshape(shape)


def paint_color_into(
    dst: np.ndarray,
    region: np.ndarray,
    color: tuple[int, int, int],
    coverage: np.ndarray,
    scratch: Scratch,
) -> None:
    """Source-over an opaque ``color`` (0..255 RGB) at ``coverage`` onto ``region``,
    writing the uint8 result into ``dst`` (which may be ``region`` itself).

    Straight colour out = dst + (src - dst) * cov / alpha_out with alpha_out = cov + a(1 - cov)
    (premultiplied source-over divided back by the resulting alpha); alpha out =
    a + (1 - a) * cov. Both are one interpolation of the four channels towards
    ``(r, g, b, 255)``, with weights ``(k, k, k, cov)``.
    """
    h, w = coverage.shape
    f = scratch.get("f", (h, w, 4))
    np.copyto(f, region, casting="unsafe")
    k = scratch.get("k", (h, w))
    tmp = scratch.get("t", (h, w))
    np.subtract(np.float32(1), coverage, out=tmp)
    np.multiply(f[..., 3], np.float32(1 / 255), out=k)
    np.multiply(k, tmp, out=k)
    np.add(k, coverage, out=k)  # alpha out
    np.maximum(k, _EPS, out=k)
    np.divide(coverage, k, out=k)
    weights = scratch.get("w", (h, w, 4))
    cv2.merge([k, k, k, np.ascontiguousarray(coverage)], dst=weights)
    d = scratch.get("d", (h, w, 4))
    scalar = (float(color[0]), float(color[1]), float(color[2]), 255.0)
    cv2.subtract(f, scalar, dst=d)  # type: ignore[call-overload]  # a per-channel scalar
    cv2.multiply(d, weights, dst=d)
    cv2.subtract(f, d, dst=f)
    f += np.float32(0.5)  # a convex mix of 0..255 values: rounding needs no clipping
    np.copyto(dst, f, casting="unsafe")


def paint_color(
    region: np.ndarray, color: tuple[int, int, int], coverage: np.ndarray
) -> np.ndarray:
    """:func:`paint_color_into` returning a new array."""
    out = np.empty_like(region)
    paint_color_into(out, region, color, coverage.astype(np.float32, copy=False), Scratch())
    return out


def erase_into(dst: np.ndarray, region: np.ndarray, coverage: np.ndarray, scratch: Scratch) -> None:
    """Reduce alpha by ``coverage`` (destination-out) into ``dst``; straight colour is kept."""
    h, w = coverage.shape
    a = scratch.get("k", (h, w))
    np.subtract(np.float32(1), coverage, out=a)
    np.multiply(a, region[..., 3], out=a)
    a += np.float32(0.5)
    if dst is not region:
        dst[..., :3] = region[..., :3]
    np.copyto(dst[..., 3], a, casting="unsafe")


def erase(region: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Reduce alpha by ``coverage`` (destination-out); straight colour is kept."""
    out = np.empty_like(region)
    erase_into(out, region, coverage.astype(np.float32, copy=False), Scratch())
    return out


def blend_over(region: np.ndarray, src: np.ndarray, coverage: np.ndarray | None = None) -> np.ndarray:
    """Source-over straight RGBA uint8 ``src`` (times ``coverage``) onto ``region``."""
    sa = src[..., 3].astype(np.float32) * np.float32(1 / 255)
    if coverage is not None:
        sa = sa * coverage
    da = region[..., 3].astype(np.float32) * np.float32(1 / 255)
    a_out = sa + da * (np.float32(1) - sa)
    k = sa / np.maximum(a_out, _EPS)
    rgb = region[..., :3].astype(np.float32)
    rgb += (src[..., :3].astype(np.float32) - rgb) * k[..., None]
    out = np.empty_like(region)
    out[..., :3] = _to_u8(rgb)
    out[..., 3] = _to_u8(a_out * np.float32(255))
    return out


def mix(region: np.ndarray, src: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Replace ``region`` by ``src`` where coverage is 1, interpolating in premultiplied space.

    Used to place generated pixels through a soft (feathered) mask: at coverage 0 the old
    pixels stay byte for byte, at 1 the new ones land byte for byte.
    """
    cov = coverage.astype(np.float32, copy=False)
    da = region[..., 3].astype(np.float32)
    sa = src[..., 3].astype(np.float32)
    a_out = da + (sa - da) * cov
    dp = region[..., :3].astype(np.float32) * da[..., None]
    sp = src[..., :3].astype(np.float32) * sa[..., None]
    p_out = dp + (sp - dp) * cov[..., None]
    rgb = p_out / np.maximum(a_out, _EPS)[..., None]
    out = np.empty_like(region)
    out[..., :3] = _to_u8(rgb)
    out[..., 3] = _to_u8(a_out)
    full = cov >= 1
    out[full] = src[full]
    none = cov <= 0
    out[none] = region[none]
    return out

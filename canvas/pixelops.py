"""Coverage-weighted pixel operations on straight-alpha RGBA uint8 regions.

These are the building blocks of painting (brush dabs, fills, erasing, pasting results):
each takes a ``(h, w, 4)`` **straight-alpha uint8** region and a ``(h, w)`` **float32
coverage in [0, 1]** and returns a new uint8 region. The mixing is done in float32 with
premultiplied colour and converted back to straight alpha with rounding, so painting an
opaque colour at full coverage gives exactly that colour.
"""

from __future__ import annotations

import cv2
import numpy as np

_EPS = np.float32(1e-6)


def _to_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(values + np.float32(0.5), 0, 255).astype(np.uint8)


def paint_color(
    region: np.ndarray, color: tuple[int, int, int], coverage: np.ndarray
) -> np.ndarray:
    """Source-over an opaque ``color`` (0..255 RGB) at ``coverage`` onto ``region``.

    Straight colour out = dst + (src - dst) * cov / alpha_out with alpha_out = cov + a(1 - cov)
    (premultiplied source-over divided back by the resulting alpha); alpha out =
    a + (1 - a) * cov. Both are one interpolation of the four channels towards
    ``(r, g, b, 255)``, with weights ``(k, k, k, cov)``.
    """
    cov = coverage.astype(np.float32, copy=False)
    f = region.astype(np.float32)
    a_out = cov + f[..., 3] * np.float32(1 / 255) * (np.float32(1) - cov)
    k = cov / np.maximum(a_out, _EPS)
    weights = cv2.merge([k, k, k, cov]).reshape(f.shape)
    f += (np.array((*color, 255), np.float32) - f) * weights
    f += np.float32(0.5)  # convex mix of 0..255 values: rounding needs no clipping
    return f.astype(np.uint8)


def erase(region: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Reduce alpha by ``coverage`` (destination-out); straight colour is kept."""
    out = region.copy()
    a = region[..., 3].astype(np.float32) * (np.float32(1) - coverage)
    out[..., 3] = _to_u8(a)
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

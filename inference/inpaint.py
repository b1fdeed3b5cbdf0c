"""Inpainting geometry and pixels: the context crop, fill modes, and the exact paste-back.

All arrays are numpy in the request's pixel space (top-left origin): images uint8
``(H, W, 3)`` RGB, masks float32 ``(H, W)`` in [0, 1] (1 = regenerate).

The flow the engine follows:

1. :func:`context_rect` — the part of the area that goes through the model: the mask's
   bounding box grown by context padding (``max(longest side / 16, mean mask side / 2)``,
   as Krita does) and to at least the model's native side, clamped to the area. A 200 px
   mask on a 2048² canvas sends ~512² pixels through the model, not 2048².
2. :func:`apply_fill` — what the masked pixels start from (keep, blur fill, grey, noise).
3. the engine generates the crop at native resolution; each latent pixel joins the
   denoising at the step its mask value allows (differential diffusion, see
   :func:`join_thresholds`).
4. :func:`paste_back` — the result is scaled back to the crop and composited over the
   original through :func:`paste_alpha`: the mask times a ramp that fades in over
   ``feather`` pixels *inside* the mask, so every pixel where the mask is 0 keeps the
   input's exact bytes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from sfumato.inference.events import Rect
from sfumato.inference.request import FillMode

__all__ = ["apply_fill", "context_rect", "join_thresholds", "paste_alpha", "paste_back", "resize_image"]


def context_rect(mask: np.ndarray, native_side: int, *, feather: float = 0.0) -> Rect:
    """The crop of the area to generate for ``mask`` (see module docstring), in pixels."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask > 0.0)
    if len(xs) == 0:
        return Rect(0, 0, width, height)
    x0, x1 = int(xs.min()), int(xs.max()) + 1
    y0, y1 = int(ys.min()), int(ys.max()) + 1
    bw, bh = x1 - x0, y1 - y0
    pad = int(math.ceil(max(max(width, height) / 16.0, (bw + bh) / 4.0, feather + 8.0)))

    def span(lo: int, hi: int, limit: int) -> tuple[int, int]:
        lo, hi = lo - pad, hi + pad
        want = max(hi - lo, min(native_side, limit))
        center = (lo + hi) / 2.0
        lo = int(math.floor(center - want / 2.0))
        hi = lo + want
        if lo < 0:
            lo, hi = 0, hi - lo
        if hi > limit:
            lo, hi = max(0, lo - (hi - limit)), limit
        return lo, hi

    cx0, cx1 = span(x0, x1, width)
    cy0, cy1 = span(y0, y1, height)
    return Rect(cx0, cy0, cx1 - cx0, cy1 - cy0)


def crop(array: np.ndarray, rect: Rect) -> np.ndarray:
    return array[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 image or float mask to ``(width, height)``: area averaging when
    shrinking, Lanczos when enlarging (images) / linear (masks). Same size: a copy-free no-op."""
    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    if image.dtype == np.uint8:
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    else:
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=interp)
    if image.dtype != np.uint8:
        out = np.clip(out, 0.0, 1.0).astype(image.dtype)
    return np.ascontiguousarray(out)


def _blur_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` (bool) with a smooth extension of the surrounding colours.

    Normalised convolution at growing radii: each round blurs the known colours and
    their weights and fills the still-empty pixels with the ratio; then one final blur.
    """
    known = (~hole).astype(np.float32)
    if known.sum() == 0:
        return np.full_like(image, 127)
    colour = image.astype(np.float32) * known[..., None]
    result = image.astype(np.float32).copy()
    todo = hole.copy()
    sigma = 4.0
    longest = max(image.shape[:2])
    while todo.any() and sigma < 4 * longest:
        c = cv2.GaussianBlur(colour, (0, 0), sigma)
        w = cv2.GaussianBlur(known, (0, 0), sigma)
        ok = todo & (w > 1e-4)
        result[ok] = c[ok] / w[ok][:, None]
        todo &= ~ok
        sigma *= 2.0
    smooth = cv2.GaussianBlur(result, (0, 0), 8.0)
    result[hole] = smooth[hole]
    return np.clip(result, 0, 255).astype(np.uint8)


def apply_fill(image: np.ndarray, mask: np.ndarray, fill: FillMode, seed: int = 0) -> np.ndarray:
    """``image`` with the masked area pre-filled per ``fill``, blended by the mask value."""
    if fill is FillMode.KEEP:
        return image
    hole = mask > 0.0
    if fill is FillMode.NEUTRAL:
        filler = np.full_like(image, 127)
    elif fill is FillMode.NOISE:
        filler = np.random.default_rng(seed).integers(0, 256, size=image.shape, dtype=np.uint8)
    elif fill is FillMode.BLUR:
        filler = _blur_fill(image, hole)
    else:  # pragma: no cover - exhaustive
        raise ValueError(fill)
    m = mask[..., None].astype(np.float32)
    out = image.astype(np.float32) * (1.0 - m) + filler.astype(np.float32) * m
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def paste_alpha(mask: np.ndarray, feather: float) -> np.ndarray:
    """float32 alpha for pasting: ``mask × clip(distance_inside / feather, 0, 1)``.

    ``distance_inside`` is each pixel's distance to the nearest pixel where the mask is
    0, so the fade lies inside the mask and the alpha is exactly 0 wherever the mask is.
    """
    inside = (mask > 0.0).astype(np.uint8)
    if feather < 1e-3:  # below a thousandth of a pixel: a hard edge (and no 0/0)
        ramp = inside.astype(np.float32)
    else:
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
        ramp = np.clip(dist / float(feather), 0.0, 1.0)
    return (ramp * mask).astype(np.float32)


def paste_back(original: np.ndarray, generated: np.ndarray, mask: np.ndarray, rect: Rect, feather: float) -> np.ndarray:
    """Composite ``generated`` (the crop's size) into a copy of ``original`` at ``rect``.

    Every pixel whose ``mask`` value is 0 — and every pixel outside ``rect`` — keeps the
    original bytes exactly.
    """
    out = original.copy()
    region_mask = crop(mask, rect)
    alpha = paste_alpha(region_mask, feather)
    base = crop(original, rect)
    a = alpha[..., None]
    mixed = np.rint(base.astype(np.float32) * (1.0 - a) + generated.astype(np.float32) * a)
    mixed = np.clip(mixed, 0, 255).astype(np.uint8)
    out[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = np.where(a > 0.0, mixed, base)
    return out


def join_thresholds(effective_steps: int) -> list[float]:
    """Differential diffusion: a latent pixel of mask value ``m`` is free (denoised by the
    model rather than reset to the noised original) at run step ``j`` iff
    ``m > thresholds[j]``, ``thresholds[j] = 1 - (j + 1) / effective_steps``.

    So ``m = 1`` is free from the first step, ``m = 0.5`` for the last half, any ``m > 0``
    at least for the last step, and ``m = 0`` never.
    """
    n = max(1, effective_steps)
    return [max(0.0, 1.0 - (j + 1) / n) for j in range(n)]

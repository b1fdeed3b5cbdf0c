"""Inpainting pixels: what the masked pixels start from, and when each latent pixel joins.

All arrays are numpy in the request's pixel space (top-left origin): images uint8
``(H, W, 3)`` RGB, masks float32 ``(H, W)`` in [0, 1] (1 = regenerate).

1. :func:`apply_fill` — what the masked pixels start from (keep, blur fill, grey, noise,
   and the model-free infills an outpaint starts from: OpenCV's Telea and Navier–Stokes
   inpainting, edge extension).
2. each latent pixel joins the denoising at the step its mask value allows (differential
   diffusion, see :func:`join_thresholds`).

Where the inpaint happens — the context around the mask, the generation size — and how
the result is placed back (through a feathered paste mask, so every pixel where the mask
is 0 keeps its bytes) are the planner's decisions (:mod:`sfumato.planner.area`,
:mod:`sfumato.planner.mask`, :mod:`sfumato.planner.placement`), made once.
"""

from __future__ import annotations

import cv2
import numpy as np
from sfumato.inference.request import FillMode

__all__ = ["apply_fill", "join_thresholds"]


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


#: OpenCV's inpainting radius (pixels around each filled pixel it reads)
INPAINT_RADIUS = 5
_CV2_METHODS = {FillMode.TELEA: cv2.INPAINT_TELEA, FillMode.NAVIER_STOKES: cv2.INPAINT_NS}


def _cv2_fill(image: np.ndarray, hole: np.ndarray, fill: FillMode) -> np.ndarray:
    """``hole`` filled by OpenCV's inpainting (Telea or Navier–Stokes)."""
    if hole.all():
        return np.full_like(image, 127)
    return cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8), INPAINT_RADIUS, _CV2_METHODS[fill])


def _edge_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Each pixel of ``hole`` takes the colour of the nearest pixel outside it (Euclidean),
    so an outpainted border continues the picture's edge colours straight outwards."""
    if hole.all():
        return np.full_like(image, 127)
    # Labels of the nearest zero (known) pixel, one label per known pixel.
    _, labels = cv2.distanceTransformWithLabels(
        hole.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE, labelType=cv2.DIST_LABEL_PIXEL
    )
    known = ~hole
    colours = np.zeros((int(labels.max()) + 1, 3), np.uint8)
    colours[labels[known]] = image[known]
    return colours[labels]


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
    elif fill in _CV2_METHODS:
        filler = _cv2_fill(image, hole, fill)
    elif fill is FillMode.EDGE:
        filler = _edge_fill(image, hole)
    else:  # pragma: no cover - exhaustive
        raise ValueError(fill)
    m = mask[..., None].astype(np.float32)
    out = image.astype(np.float32) * (1.0 - m) + filler.astype(np.float32) * m
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def join_thresholds(effective_steps: int) -> list[float]:
    """Differential diffusion: a latent pixel of mask value ``m`` is free (denoised by the
    model rather than reset to the noised original) at run step ``j`` iff
    ``m > thresholds[j]``, ``thresholds[j] = 1 - (j + 1) / effective_steps``.

    So ``m = 1`` is free from the first step, ``m = 0.5`` for the last half, any ``m > 0``
    at least for the last step, and ``m = 0`` never.
    """
    n = max(1, effective_steps)
    return [max(0.0, 1.0 - (j + 1) / n) for j in range(n)]

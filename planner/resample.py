"""Scaling images and masks between area size and generation size.

Downscaling averages (``INTER_AREA``, no aliasing); upscaling uses Lanczos for images
and bilinear for masks (masks must stay within [0, 1] without ringing). Resizing to the
same size returns an unchanged copy, so an area generated at its own size stays exact.
"""

from __future__ import annotations

import cv2
import numpy as np
from sfumato.planner.sizing import Size

__all__ = ["resize_image", "resize_mask"]


def _interp(src_w: int, src_h: int, size: Size, up: int) -> int:
    if size.width <= src_w and size.height <= src_h:
        return cv2.INTER_AREA
    return up


def resize_image(image: np.ndarray, size: Size) -> np.ndarray:
    """uint8 ``(h, w, C)`` → uint8 ``(size.height, size.width, C)``."""
    h, w = image.shape[:2]
    if (w, h) == (size.width, size.height):
        return image.copy()
    out = cv2.resize(
        np.ascontiguousarray(image), (size.width, size.height),
        interpolation=_interp(w, h, size, cv2.INTER_LANCZOS4),
    )
    if out.ndim == 2 and image.ndim == 3:
        out = out[..., None]
    return out


def resize_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    """float32 ``(h, w)`` in [0, 1] → float32 ``(size.height, size.width)`` in [0, 1]."""
    h, w = mask.shape[:2]
    if (w, h) == (size.width, size.height):
        return mask.astype(np.float32, copy=True)
    out = cv2.resize(
        np.ascontiguousarray(mask, dtype=np.float32), (size.width, size.height),
        interpolation=_interp(w, h, size, cv2.INTER_LINEAR),
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)

"""Reading one layer's pixels over a document rectangle (its offset applied).

Layers store straight-alpha RGBA uint8 in their own surface space; a layer's surface
origin sits at its ``x``/``y`` plus those of its groups
(:func:`sfumato.canvas.model.layers.document_offset`; the painted pixels' document bounds are
:meth:`PixelLayer.document_bounds <sfumato.canvas.model.layers.PixelLayer.document_bounds>`). These helpers return arrays in the
coordinate space of the requested document rect (row 0 = ``rect.y``).
"""

from __future__ import annotations

import cv2
import numpy as np
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, document_offset

__all__ = ["layer_alpha", "layer_rgba", "over_white"]


def layer_rgba(layer: PixelLayer, rect: Rect) -> np.ndarray:
    """``(rect.h, rect.w, 4)`` uint8 straight RGBA of ``layer`` over the document ``rect``."""
    dx, dy = document_offset(layer)
    return layer.surface.read(rect.translate(-dx, -dy))


def layer_alpha(layer: PixelLayer, rect: Rect, size: tuple[int, int] | None = None) -> np.ndarray:
    """float32 coverage in [0, 1] of ``layer`` over the document ``rect``: its alpha
    (opacity ignored: for mask and region layers the painted alpha *is* the value;
    opacity is display). ``(rect.h, rect.w)``, or ``(height, width)`` of ``size`` =
    ``(width, height)`` when given — then scaled while still uint8 (cheap on big areas).
    """
    alpha = np.zeros((rect.h, rect.w), np.uint8)
    painted = layer.document_bounds().intersect(rect)
    if not painted.empty:
        alpha[painted.slices(rect.x, rect.y)] = layer_rgba(layer, painted)[..., 3]
    if size is not None and size != (rect.w, rect.h):
        shrink = size[0] <= rect.w and size[1] <= rect.h
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return alpha.astype(np.float32) * np.float32(1.0 / 255.0)


def over_white(rgba: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Composite straight RGBA uint8 over opaque white → ``(h, w, 3)`` uint8 RGB.

    Integer arithmetic (exact rounding of ``(c·a + 255·(255 − a)) / 255``); opaque input
    at full opacity is returned as a plain copy of its colour channels.
    """
    opacity = min(max(float(opacity), 0.0), 1.0)
    alpha = rgba[..., 3]
    if opacity >= 1.0 and bool((alpha == 255).all()):
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha.astype(np.uint16)
    if opacity < 1.0:
        a = ((a * np.uint16(round(opacity * 255)) + 127) // 255).astype(np.uint16)
    a = a[..., None]
    # c·a + 255·(255 − a) <= 65025: fits uint16 with the rounding term
    mixed = rgba[..., :3].astype(np.uint16) * a + (255 - a) * np.uint16(255) + np.uint16(127)
    return (mixed // np.uint16(255)).astype(np.uint8)

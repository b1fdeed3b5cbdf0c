"""Reading one layer's pixels over a document rectangle (its offset applied).

Layers store straight-alpha RGBA uint8 in their own surface space; a layer's surface
origin sits at its ``x``/``y`` plus those of its groups
(:func:`sfumato.canvas.composite.document_offset`). These helpers return arrays in the
coordinate space of the requested document rect (row 0 = ``rect.y``).
"""

from __future__ import annotations

import numpy as np
from sfumato.canvas.composite import document_offset
from sfumato.canvas.geometry import Rect
from sfumato.canvas.layers import PixelLayer

__all__ = ["layer_alpha", "layer_bounds", "layer_rgba", "over_white"]


def layer_rgba(layer: PixelLayer, rect: Rect) -> np.ndarray:
    """``(rect.h, rect.w, 4)`` uint8 straight RGBA of ``layer`` over the document ``rect``."""
    dx, dy = document_offset(layer)
    return layer.surface.read(rect.translate(-dx, -dy))


def layer_bounds(layer: PixelLayer) -> Rect:
    """Bounds of the layer's painted pixels in document space (empty when none)."""
    dx, dy = document_offset(layer)
    return layer.surface.bounds().translate(dx, dy)


def layer_alpha(layer: PixelLayer, rect: Rect) -> np.ndarray:
    """``(rect.h, rect.w)`` float32 coverage in [0, 1]: the layer's alpha (opacity ignored:
    for mask and region layers the painted alpha *is* the value; opacity is display)."""
    return layer_rgba(layer, rect)[..., 3].astype(np.float32) / 255.0


def over_white(rgba: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Composite straight RGBA uint8 over opaque white → ``(h, w, 3)`` uint8 RGB."""
    alpha = rgba[..., 3:4].astype(np.float32) * (float(opacity) / 255.0)
    rgb = rgba[..., :3].astype(np.float32)
    out = rgb * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)

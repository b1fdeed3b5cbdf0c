"""Small synthetic documents for planner tests (numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface


def rgba(h: int, w: int, rgb: tuple[int, int, int] = (0, 0, 0), alpha: int = 255) -> np.ndarray:
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = alpha
    return out


def layer(
    name: str, pixels: np.ndarray, role: Role = Role.PAINT, x: int = 0, y: int = 0, **kw: Any
) -> PixelLayer:
    return PixelLayer(name, TiledSurface.from_array(pixels), role=role, x=x, y=y, **kw)


def document(width: int, height: int, *layers: PixelLayer) -> Document:
    """A document whose root holds ``layers`` (given top first)."""
    doc = Document(width, height)
    for item in layers:
        doc.root.append(item)
    return doc


def gradient(h: int, w: int) -> np.ndarray:
    """An opaque RGBA picture with distinct pixels (so shifts and scaling show)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((h, w, 4), np.uint8)
    out[..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
    out[..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
    out[..., 2] = ((xx + yy) % 256).astype(np.uint8)
    out[..., 3] = 255
    return out

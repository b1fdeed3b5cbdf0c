"""The benchmark document, shared by ``bench_canvas.py`` and ``bench_files.py``.

A square canvas (4096² by default) with ``layers`` layers (20), each holding three large
soft blobs (about a quarter of the canvas apiece) in the separable blend modes QPainter
also implements, bottom to top as :data:`MODES`. numpy only (no Qt).
"""

from __future__ import annotations

import numpy as np
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.pixels.blend import BlendMode

SIDE = 4096
LAYERS = 20
# Bottom to top. Only modes QPainter also implements, so both sides do the same work.
MODES = [
    BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.NORMAL, BlendMode.SCREEN,
    BlendMode.OVERLAY, BlendMode.NORMAL, BlendMode.SOFT_LIGHT, BlendMode.DARKEN,
    BlendMode.NORMAL, BlendMode.LIGHTEN, BlendMode.NORMAL, BlendMode.MULTIPLY,
    BlendMode.HARD_LIGHT, BlendMode.NORMAL, BlendMode.DIFFERENCE, BlendMode.COLOR_DODGE,
    BlendMode.NORMAL, BlendMode.SCREEN, BlendMode.COLOR_BURN, BlendMode.NORMAL,
]  # fmt: skip


def soft_blob(rng: np.random.Generator, radius: int, feather: int) -> np.ndarray:
    """A ``(2r, 2r, 4)`` straight RGBA uint8 disc with a soft edge and a gentle gradient."""
    n = 2 * radius
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    d = np.hypot(xx - radius + 0.5, yy - radius + 0.5)
    alpha = np.clip((radius - d) / feather, 0.0, 1.0)
    out = np.empty((n, n, 4), np.uint8)
    c0 = rng.integers(30, 226, 3)
    c1 = rng.integers(30, 226, 3)
    t = (xx / n)[..., None]
    out[..., :3] = (c0 * (1 - t) + c1 * t).astype(np.uint8)
    out[..., 3] = (alpha * 255 + 0.5).astype(np.uint8)
    return out


def build_document(
    seed: int = 1, side: int = SIDE, layers: int = LAYERS, recipe: Recipe | None = None
) -> Document:
    """``layers`` layers of three soft blobs each (about a quarter of the canvas apiece)."""
    rng = np.random.default_rng(seed)
    doc = Document(side, side, recipe=recipe) if recipe is not None else Document(side, side)
    radius = int(side * 0.163)  # three discs of this radius cover ~25% of the canvas
    for i in range(layers):
        layer = PixelLayer(f"layer {i + 1}", blend=MODES[i % len(MODES)], opacity=0.9 if i % 3 else 1.0)
        for _ in range(3):
            blob = soft_blob(rng, radius, feather=radius // 3)
            x = int(rng.integers(-radius // 2, side - 3 * radius // 2))
            y = int(rng.integers(-radius // 2, side - 3 * radius // 2))
            old = layer.surface.read(Rect(x, y, blob.shape[1], blob.shape[0]))
            # Normal-composite the blob onto what the layer already has there.
            a = blob[..., 3:4].astype(np.float32) / 255
            merged = old.astype(np.float32) * (1 - a) + blob.astype(np.float32) * a
            merged[..., 3:4] = (a + old[..., 3:4].astype(np.float32) / 255 * (1 - a)) * 255
            layer.surface.write(x, y, np.clip(merged + 0.5, 0, 255).astype(np.uint8))
        layer.surface.drop_empty_tiles()
        doc._raw_insert(layer)  # inserted at the top: the last layer ends on top
    doc.history.clear()
    return doc

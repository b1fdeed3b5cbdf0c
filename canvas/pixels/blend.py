"""Blend modes: the OpenRaster composite ops, with W3C Compositing and Blending semantics.

Each mode is identified by its OpenRaster ``composite-op`` string. This module only names
the modes; the rest of compositing, from the pixel up:

- :mod:`sfumato.canvas.pixels.blendmath` — each mode's per-pixel formula (separable and
  non-separable blend functions, Porter-Duff operators) on planar premultiplied float32.
- :mod:`sfumato.canvas.render.composite` — the layer tree flattened with them (``flatten``).
- :mod:`sfumato.canvas.render.compositor` — the window's cached, dirty-tracking ``Compositor``.

Not compositing: :mod:`sfumato.canvas.pixels.pixelops` holds painting's coverage-weighted edits of
straight uint8 regions (dabs, fills, erasing, pasting results); it knows no blend mode.
"""

from __future__ import annotations

from enum import Enum


class BlendMode(Enum):
    NORMAL = "svg:src-over"
    MULTIPLY = "svg:multiply"
    SCREEN = "svg:screen"
    OVERLAY = "svg:overlay"
    DARKEN = "svg:darken"
    LIGHTEN = "svg:lighten"
    COLOR_DODGE = "svg:color-dodge"
    COLOR_BURN = "svg:color-burn"
    HARD_LIGHT = "svg:hard-light"
    SOFT_LIGHT = "svg:soft-light"
    DIFFERENCE = "svg:difference"
    COLOR = "svg:color"
    LUMINOSITY = "svg:luminosity"
    HUE = "svg:hue"
    SATURATION = "svg:saturation"
    PLUS = "svg:plus"
    DST_IN = "svg:dst-in"
    DST_OUT = "svg:dst-out"
    SRC_ATOP = "svg:src-atop"
    DST_ATOP = "svg:dst-atop"

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").title()

    @property
    def is_porter_duff(self) -> bool:
        """True for the ops that change coverage rather than mix colours."""
        return self in _PORTER_DUFF

    @classmethod
    def from_ora(cls, op: str | None) -> BlendMode:
        """Parse an OpenRaster ``composite-op``; missing or unknown ops fall back to normal
        (the spec's rule for readers), so files from newer programs still open."""
        if not op:
            return cls.NORMAL
        try:
            return cls(op.strip())
        except ValueError:
            return _ALIASES.get(op.strip(), cls.NORMAL)


_PORTER_DUFF = frozenset(
    {BlendMode.PLUS, BlendMode.DST_IN, BlendMode.DST_OUT, BlendMode.SRC_ATOP, BlendMode.DST_ATOP}
)

# Spellings other programs have written.
_ALIASES = {
    "svg:add": BlendMode.PLUS,
    "svg:normal": BlendMode.NORMAL,
    "svg:src_over": BlendMode.NORMAL,
}

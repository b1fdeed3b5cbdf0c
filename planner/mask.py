"""The inpaint masks: where the document says "regenerate here", and the two masks made
from it.

Source (in document space, float32 in [0, 1]):

- the union (per-pixel maximum) of the alpha of every visible ``inpaint-mask`` layer;
- when there is no visible mask layer: the document's selection (already feathered by
  the selection tools).

A visible mask layer with no painted pixels is an error (:class:`EmptyMaskError`): the
user meant to inpaint but painted nothing; hiding the layer turns it off.

From the source, over the generation area, two masks are made:

- the **denoise mask** (what the model regenerates, each pixel's value its own strength):
  the source grown by ``g`` pixels and feathered by a Gaussian of sigma ``g / 3`` (so it
  falls from ~1 at the mask's edge through 0.5 at ``g`` to ~0 at ``2g``), then never
  below the source itself, with
  ``g = strength × clamp(mean side of the mask bounds × 0.05, 2, 32)``. At full strength
  new content must blend into the surroundings, so the model repaints a margin; at low
  strength the change is subtle and the margin small.
- the **paste mask** (how the result is laid over the original): the source feathered
  *inward* over ``f = clamp(mean side × 0.06, 2, 16)`` pixels (eroded by ``f / 2``,
  blurred with sigma ``f / 4``), and never above the source. Every pixel where the
  source is 0 has paste value 0, so it stays byte-identical in the document; the seam
  fades over ``f`` pixels inside the mask, where the model's margin already matches.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect, nonzero_bounds
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.planner.errors import EmptyMaskError
from sfumato.planner.layerpixels import layer_alpha

log = logging.getLogger(__name__)

__all__ = [
    "MaskSource",
    "denoise_grow",
    "denoise_mask",
    "mask_source",
    "paste_feather",
    "paste_mask",
]

GROW_FRACTION = 0.05
GROW_MIN, GROW_MAX = 2.0, 32.0
FEATHER_FRACTION = 0.06
FEATHER_MIN, FEATHER_MAX = 2.0, 16.0


@dataclass(frozen=True, eq=False)
class MaskSource:
    """Where the inpaint mask comes from: visible mask layers, or the selection."""

    layers: tuple[PixelLayer, ...] = ()
    selection: np.ndarray | None = None  # float32 (doc H, doc W), only when no layers

    @property
    def bounds(self) -> Rect:
        """Bounds of the non-zero mask pixels in document space (empty when none)."""
        if self.layers:
            out = Rect(0, 0, 0, 0)
            for layer in self.layers:
                out = out.union(layer.document_bounds())
            return out
        if self.selection is not None:
            return nonzero_bounds(self.selection)
        return Rect(0, 0, 0, 0)

    def read(self, rect: Rect) -> np.ndarray:
        """The mask over document ``rect``: float32 ``(rect.h, rect.w)`` in [0, 1]."""
        out = np.zeros((rect.h, rect.w), np.float32)
        for layer in self.layers:
            np.maximum(out, layer_alpha(layer, rect), out=out)
        if not self.layers and self.selection is not None:
            h, w = self.selection.shape
            inside = rect.intersect(Rect(0, 0, w, h))
            if not inside.empty:
                out[inside.slices(rect.x, rect.y)] = np.clip(
                    self.selection[inside.slices()], 0.0, 1.0
                )
        return out


def mask_source(doc: Document) -> MaskSource | None:
    """The document's inpaint mask, or ``None`` when nothing is masked or selected.

    Raises :class:`EmptyMaskError` when visible mask layers exist but none has pixels.
    """
    layers = tuple(
        layer for layer in doc.pixel_layers(Role.INPAINT_MASK) if layer.effectively_visible()
    )
    if layers:
        source = MaskSource(layers=layers)
        if source.bounds.intersect(doc.rect).empty:
            names = ", ".join(repr(layer.name) for layer in layers)
            raise EmptyMaskError(
                f"the inpaint mask layer {names} is empty: paint where to regenerate, "
                "or hide the layer to generate without a mask"
            )
        return source
    if doc.selection is not None:
        selection = np.asarray(doc.selection, dtype=np.float32)
        if selection.shape != (doc.height, doc.width):
            raise EmptyMaskError(
                f"the selection is {selection.shape[1]}x{selection.shape[0]} but the document "
                f"is {doc.width}x{doc.height}; select again"
            )
        if float(selection.max(initial=0.0)) > 0.0:
            return MaskSource(selection=selection)
    return None


def _mean_side(mask: np.ndarray) -> float:
    held = nonzero_bounds(mask)
    return (held.w + held.h) / 2.0


def denoise_grow(mask: np.ndarray, strength: float) -> float:
    """Pixels the denoise mask grows by (and its feather radius) for ``strength`` 0..1."""
    base = min(max(_mean_side(mask) * GROW_FRACTION, GROW_MIN), GROW_MAX)
    return float(max(0.0, min(1.0, strength)) * base)


def paste_feather(mask: np.ndarray) -> float:
    """Width in pixels of the inward paste-back fade for this mask."""
    return float(min(max(_mean_side(mask) * FEATHER_FRACTION, FEATHER_MIN), FEATHER_MAX))


def _disk(radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def denoise_mask(mask: np.ndarray, strength: float) -> np.ndarray:
    """The soft mask the model denoises through: grown, feathered, never below ``mask``.

    ``mask`` is float32 ``(h, w)`` in [0, 1] over the generation area (area pixels).
    """
    mask = np.ascontiguousarray(mask, dtype=np.float32)
    grow = denoise_grow(mask, strength)
    if grow < 0.5:
        return mask.copy()
    radius = int(math.ceil(grow))
    grown = cv2.dilate(mask, _disk(radius))
    blurred = cv2.GaussianBlur(grown, (0, 0), sigmaX=grow / 3, borderType=cv2.BORDER_REPLICATE)
    return np.clip(np.maximum(blurred, mask), 0.0, 1.0).astype(np.float32)


def paste_mask(mask: np.ndarray, feather: float | None = None) -> np.ndarray:
    """The mask the result is pasted back through: faded inward, never above ``mask``.

    Zero wherever ``mask`` is zero, so those pixels stay untouched. A mask too thin for
    the fade gets a narrower one (down to the mask itself) rather than vanishing.
    """
    mask = np.ascontiguousarray(mask, dtype=np.float32)
    f = paste_feather(mask) if feather is None else float(feather)
    peak = float(mask.max(initial=0.0))
    while f >= 1.0:
        eroded = cv2.erode(mask, _disk(int(round(f / 2))), borderType=cv2.BORDER_REPLICATE)
        faded = cv2.GaussianBlur(eroded, (0, 0), sigmaX=f / 4, borderType=cv2.BORDER_REPLICATE)
        out = np.minimum(faded, mask)
        if float(out.max(initial=0.0)) >= 0.9 * peak:
            return np.clip(out, 0.0, 1.0).astype(np.float32)
        f /= 2
    return mask.copy()

"""The area to generate: mask bounds plus context, square-ish, at least native size.

All rectangles are in document pixel space. The rules (as Krita AI Diffusion does it):

1. Nothing masked → the whole canvas.
2. Otherwise start from the bounds of the mask (or selection) and grow them on every
   side by the *context padding*
   ``max(longest canvas side / 16, mean side of the mask bounds / 2)``, so the model
   sees enough of the surroundings to continue them.
3. Make it square-ish: the shorter side is widened (centred) to at least
   ``longer side / MAX_ASPECT`` (:data:`MAX_ASPECT` = 1.5, the most elongated shape an
   SD 1.x model generates without distortion).
4. Each side is at least the model's native size (a 40 px mask on a 2000 px canvas is
   generated as a 512 px crop with plenty of context, not upscaled from 40 px).
5. Sides are widened to multiples of 8 where the canvas allows (so an area inside the
   pixel budget needs no resampling at all).
6. Clipped to the canvas: an area that sticks out is first slid back inside (keeping its
   size); only what is larger than the canvas is cut. The result always contains the
   mask bounds.
"""

from __future__ import annotations

import math

from sfumato.canvas.model.geometry import Rect
from sfumato.planner.families import MULTIPLE

__all__ = ["MAX_ASPECT", "context_padding", "plan_area"]

MAX_ASPECT = 1.5


def context_padding(canvas: Rect, mask_bounds: Rect) -> int:
    """``max(longest canvas side / 16, mean side of the mask bounds / 2)``, in pixels."""
    longest = max(canvas.w, canvas.h)
    mean_side = (mask_bounds.w + mask_bounds.h) / 2
    return int(math.ceil(max(longest / 16, mean_side / 2)))


def _widen(start: int, length: int, target: int) -> tuple[int, int]:
    """Grow the 1-D span ``[start, start + length)`` to ``target``, centred."""
    if length >= target:
        return start, length
    extra = target - length
    return start - extra // 2, target


def _fit(start: int, length: int, limit: int) -> tuple[int, int]:
    """Slide ``[start, start + length)`` inside ``[0, limit)``; cut only what cannot fit."""
    if length >= limit:
        return 0, limit
    start = min(max(start, 0), limit - length)
    return start, length


def plan_area(canvas: Rect, mask_bounds: Rect | None, native: int) -> Rect:
    """The generation area for ``mask_bounds`` on a canvas of ``canvas`` (see module doc).

    ``canvas`` is the document rect (origin 0, 0); ``mask_bounds`` the bounds of the
    mask's non-zero pixels in document space, or ``None``/empty for "nothing masked".
    ``native`` is the model's native side in pixels.
    """
    if mask_bounds is None or mask_bounds.empty:
        return canvas
    mask_bounds = mask_bounds.intersect(canvas)
    if mask_bounds.empty:
        return canvas
    pad = context_padding(canvas, mask_bounds)
    grown = mask_bounds.grow(pad)
    x, y, w, h = grown.x, grown.y, grown.w, grown.h
    # square-ish
    x, w = _widen(x, w, int(math.ceil(h / MAX_ASPECT)))
    y, h = _widen(y, h, int(math.ceil(w / MAX_ASPECT)))
    # at least native, and multiples of 8
    x, w = _widen(x, w, native)
    y, h = _widen(y, h, native)
    x, w = _widen(x, w, -(-w // MULTIPLE) * MULTIPLE)
    y, h = _widen(y, h, -(-h // MULTIPLE) * MULTIPLE)
    x, w = _fit(x, w, canvas.w)
    y, h = _fit(y, h, canvas.h)
    area = Rect(x, y, w, h)
    assert area.contains(mask_bounds), (area, mask_bounds)
    return area

"""Where a live frame renders: the live area, and how a frame blends into the last one.

Live mode renders only what changed (issue 12):

- with a selection (or a visible inpaint mask), the frame is the inpaint the planner plans
  anyway — its area is the mask's bounds with context (:func:`~sfumato.planner.area.plan_area`);
- otherwise the whole canvas, when it fits the family's pixel budget (one frame shows it
  all, no resampling beyond the planner's usual sizing);
- on a larger canvas, a window of the family's native size (at least :data:`MIN_WINDOW`:
  a tiny model, such as the built-in one, still sees a useful part of the painting,
  generated at its own size as any generation is) centred on the newest change,
  slid inside the canvas: the window follows the brush, and each frame is blended into the
  live overlay through :func:`window_blend`, a ramp :data:`FEATHER` pixels wide on every edge
  that lies inside the canvas (edges on the canvas border need none).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.inference.fast_presets import FastPreset
from sfumato.planner.families import MULTIPLE, FamilyInfo, family_for_model
from sfumato.planner.plan import Plan, plan
from sfumato.planner.prompts import LoraLookup
from sfumato.planner.recipe import GenerationSettings

__all__ = ["FEATHER", "MIN_WINDOW", "live_area", "plan_live", "window_blend"]

#: Width in pixels of the blend ramp on a live window's inner edges.
FEATHER = 32
#: The smallest live window side, in document pixels.
MIN_WINDOW = 512


def live_area(canvas: Rect, family: FamilyInfo, latest: Rect | None, previous: Rect | None = None) -> Rect:
    """The document rectangle a live frame without a mask renders.

    ``latest`` is the newest change (``None``: anywhere — keep ``previous``, the last
    window, or centre one on the canvas).
    """
    side = max(family.native, MIN_WINDOW)
    budget = max(family.max_pixels, side * side * 5 // 4)
    if canvas.w * canvas.h <= budget:
        return canvas
    w, h = min(side, canvas.w), min(side, canvas.h)
    if latest is not None and not latest.intersect(canvas).empty:
        centre = latest.intersect(canvas)
        cx, cy = centre.x + centre.w // 2, centre.y + centre.h // 2
    elif previous is not None and canvas.contains(previous) and (previous.w, previous.h) == (w, h):
        return previous
    else:
        cx, cy = canvas.w // 2, canvas.h // 2
    # Corners on the 8-pixel grid, so consecutive windows share pixels exactly.
    x = min(max(cx - w // 2, 0), canvas.w - w) // MULTIPLE * MULTIPLE
    y = min(max(cy - h // 2, 0), canvas.h - h) // MULTIPLE * MULTIPLE
    return Rect(x, y, w, h)


def plan_live(
    doc: Document,
    settings: GenerationSettings,
    latest: Rect | None = None,
    previous: Rect | None = None,
    preset: FastPreset | None = None,
    loras: LoraLookup | None = None,
) -> Plan:
    """Plan a live frame of ``doc``: an inpaint (selection or mask) plans its own area,
    anything else renders :func:`live_area` around ``latest``, the newest change.

    ``preset``: the live preset whose LoRA and scheduler tweaks the frame needs (its
    sampler, steps and guidance are already in ``settings``). ``loras``: the installed
    LoRAs for ``<lora:…>`` tags (live mode passes the list it scanned once, so a frame
    does not rescan the folders).
    """
    if not settings.model:
        return plan(doc, settings)  # the planner's own message for "no model"
    info = family_for_model(settings.model, settings.model_family)
    planned = plan(doc, settings, family=info, area=live_area(doc.rect, info, latest, previous), loras=loras)
    if preset is None:
        return planned
    return dataclasses.replace(planned, request=preset.extras(planned.request))


def window_blend(area: Rect, canvas: Rect, feather: int = FEATHER) -> np.ndarray | None:
    """Float32 ``(area.h, area.w)`` weights for blending a frame of ``area`` into the
    overlay: 1 inside, ramping to 0 towards each edge that lies inside ``canvas``. ``None``
    when ``area`` is the whole canvas (nothing to blend into)."""
    if area == canvas:
        return None

    def ramp(length: int, open_start: bool, open_end: bool) -> np.ndarray:
        pos = np.arange(length, dtype=np.float32) + 0.5
        weight = np.ones(length, np.float32)
        width = max(1.0, min(float(feather), length / 2))
        if open_start:
            weight = np.minimum(weight, pos / width)
        if open_end:
            weight = np.minimum(weight, (length - pos) / width)
        return np.clip(weight, 0.0, 1.0)

    wx = ramp(area.w, area.x > canvas.x, area.x1 < canvas.x1)
    wy = ramp(area.h, area.y > canvas.y, area.y1 < canvas.y1)
    return np.ascontiguousarray(np.minimum(wy[:, None], wx[None, :]))

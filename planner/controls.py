"""Control images from control layers: sketches and maps that steer the composition.

For each visible ``control`` layer, top first:

1. its pixels over the generation area, composited over white with the layer's opacity
   (an unpainted part of a sketch layer is blank paper, not black);
2. scaled to the generation size *before* preprocessing, so lines come out one or two
   pixels wide at the size the ControlNet sees;
3. run through its kind's model-free preprocessor
   (:func:`sfumato.inference.preprocess.preprocess`: a black-on-white scribble becomes
   white-on-black lines; depth/pose/segmentation maps pass through).

A control layer with nothing painted inside the area is skipped (with a note).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role
from sfumato.inference.preprocess import preprocess
from sfumato.inference.request import ControlSpec, ModelRef
from sfumato.planner.layerpixels import layer_rgba, over_white
from sfumato.planner.resample import resize_image
from sfumato.planner.sizing import Size
from sfumato.vocabulary.kinds import ControlKind

log = logging.getLogger(__name__)

__all__ = ["PlannedControl", "control_image", "plan_controls"]


@dataclass(frozen=True, eq=False)
class PlannedControl:
    """A preprocessed control image (uint8 RGB at generation size) and its settings."""

    spec: ControlSpec
    layer_name: str


def control_image(rgba: np.ndarray, kind: ControlKind, size: Size, opacity: float = 1.0) -> np.ndarray:
    """RGBA crop of a control layer → what the ControlNet sees (uint8 RGB at ``size``)."""
    rgb = over_white(rgba, opacity)
    return np.ascontiguousarray(preprocess(kind, resize_image(rgb, size)))


def _layer_over_white(layer: PixelLayer, area: Rect) -> np.ndarray | None:
    """The layer over white paper across ``area`` (RGB uint8), or ``None`` when it has no
    pixels there. Only the part the layer covers is composited."""
    painted = layer.document_bounds().intersect(area)
    if painted.empty:
        return None
    crop = layer_rgba(layer, painted)
    if not crop[..., 3].any():
        return None
    rgb = np.full((area.h, area.w, 3), 255, np.uint8)
    rgb[painted.slices(area.x, area.y)] = over_white(crop, layer.opacity)
    return rgb


def plan_controls(
    doc: Document,
    area: Rect,
    size: Size,
    models: Mapping[ControlKind, str] | None = None,
) -> tuple[list[PlannedControl], list[str]]:
    """The controls over ``area`` at generation ``size`` and notes on skipped layers.

    ``models`` optionally names the ControlNet weights per kind; otherwise the request
    leaves ``model`` as ``None`` and the engine picks the family's default.
    """
    notes: list[str] = []
    out: list[PlannedControl] = []
    for layer in doc.pixel_layers(Role.CONTROL):
        if not layer.effectively_visible():
            continue
        settings = layer.control or ControlSettings()
        paper = _layer_over_white(layer, area)
        if paper is None:
            notes.append(f"control layer {layer.name!r} skipped: nothing painted in the area")
            continue
        image = np.ascontiguousarray(preprocess(settings.kind, resize_image(paper, size)))
        source = (models or {}).get(settings.kind)
        out.append(PlannedControl(
            spec=ControlSpec(
                kind=settings.kind,
                image=image,
                strength=settings.strength,
                start=settings.start,
                end=settings.end,
                model=None if source is None else ModelRef(source),
            ),
            layer_name=layer.name,
        ))
    for note in notes:
        log.info(note)
    return out, notes

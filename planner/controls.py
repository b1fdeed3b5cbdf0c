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

A **pose** layer with a skeleton (``ControlSettings.pose``) is drawn from the skeleton
instead (:func:`sfumato.planner.pose.render_pose_control`: OpenPose's colour map, the
keypoints mapped from the area onto the generation size, limbs as thick as at any size);
its pixels (the same drawing at the document's scale, for display) are not read. A
skeleton with no people is skipped (with a note).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role, document_offset
from sfumato.inference.preprocess import preprocess
from sfumato.inference.request import ControlSpec, ModelRef
from sfumato.planner.layerpixels import layer_rgba, over_white
from sfumato.planner.pose import render_pose_control
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


#: Preprocessed control images by content: live mode plans a frame after every stroke,
#: and a control layer nobody touched gives the same input each time (XDoG line art costs
#: ~20 ms at 512²). Keyed by kind and a digest of the input pixels, so any change to the
#: layer, the area or the size is a new entry; the oldest go first.
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[ControlKind, tuple[int, ...], bytes], np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def _preprocessed(kind: ControlKind, image: np.ndarray) -> np.ndarray:
    """``preprocess(kind, image)``, computed once per distinct input (see :data:`_cache`)."""
    image = np.ascontiguousarray(image)
    key = (kind, image.shape, hashlib.blake2b(image.data, digest_size=16).digest())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit.copy()  # each plan owns its image (a copy: 0.1 ms at 512²)
    out = np.ascontiguousarray(preprocess(kind, image))
    with _cache_lock:
        _cache[key] = out.copy()
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return out


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
        if settings.kind is ControlKind.POSE and settings.pose is not None:
            if not settings.pose.people:
                notes.append(f"pose layer {layer.name!r} skipped: it has no people")
                continue
            image = render_pose_control(
                settings.pose, document_offset(layer), area, (size.width, size.height)
            )
        else:
            paper = _layer_over_white(layer, area)
            if paper is None:
                notes.append(f"control layer {layer.name!r} skipped: nothing painted in the area")
                continue
            image = _preprocessed(settings.kind, resize_image(paper, size))
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

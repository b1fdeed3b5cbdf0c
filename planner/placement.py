"""Placing a result: the generated image becomes a new ``generated`` layer over the area.

The layer sits exactly over ``plan.area`` (its x/y offset is the area's corner) and
carries ``generation`` = :func:`~sfumato.planner.record.generation_record` (the request
summary, the area, this batch image's seed and what the engine reported), which the
OpenRaster writer saves as ``sfumato:generation``.

- txt2img / img2img: the layer is opaque over the area.
- inpaint (and an edit in a selection): the layer's alpha is the plan's paste mask (``round(paste × 255)``), so it is
  transparent — and the flattened picture byte-identical — wherever the mask was 0.

Adding the layer is one undoable command (:class:`PlaceResultCommand`) executed through
``doc.history``. The layer goes directly above the paint layer the artist is working on
(:func:`insertion_point`) and the artist's active layer stays active, so a result never
takes the next stroke and never buries the other paint layers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from sfumato.canvas.edits.structure_commands import AddLayer
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.planner.plan import Plan
from sfumato.planner.record import generation_record
from sfumato.planner.resample import resize_image
from sfumato.planner.sizing import Size

log = logging.getLogger(__name__)

__all__ = [
    "PlaceResultCommand", "insertion_index", "insertion_point", "place_result", "result_layer", "result_pixels",
]


def result_pixels(plan: Plan, image: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """The result as straight RGBA uint8 ``(area.h, area.w, 4)``, ready for a layer.

    ``image`` is uint8 RGB at the generation size (or already at the area size).
    ``alpha`` (float32 ``(area.h, area.w)`` in [0, 1]) overrides the layer's coverage
    (live mode's window blend); by default an inpaint's is its paste mask, others opaque.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"result must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    area = plan.area
    rgb = resize_image(np.ascontiguousarray(image[..., :3]), Size(area.w, area.h))
    out = np.empty((area.h, area.w, 4), np.uint8)
    out[..., :3] = rgb
    if alpha is None and plan.paste_mask is not None:  # an inpaint, or an edit in a selection
        alpha = plan.paste_mask
    if alpha is not None:
        if alpha.shape != (area.h, area.w):
            raise ValueError(f"alpha must cover the area {area.w}x{area.h}, got {alpha.shape}")
        coverage = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
        out[..., 3] = coverage
        out[coverage == 0] = 0  # fully transparent pixels carry no colour (sparse, reproducible)
    else:
        out[..., 3] = 255
    return out


def result_layer(
    plan: Plan,
    image: np.ndarray,
    *,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    batch_index: int = 0,
    alpha: np.ndarray | None = None,
) -> PixelLayer:
    """A new ``generated`` layer holding ``image`` (batch image ``batch_index``) over
    ``plan.area`` (not yet inserted).

    Its ``generation`` record is :func:`~sfumato.planner.record.generation_record`;
    pass the engine's ``Finished.metadata`` to record what the engine reported.
    """
    summary = generation_record(plan, metadata, batch_index)
    label = name or _default_name(plan, summary)
    surface = TiledSurface.from_array(result_pixels(plan, image, alpha))
    surface.drop_empty_tiles()
    return PixelLayer(
        label, surface, role=Role.GENERATED, generation=summary, x=plan.area.x, y=plan.area.y
    )


def _default_name(plan: Plan, summary: dict[str, Any]) -> str:
    prompt = " ".join(str(summary.get("prompt", "")).split())
    if len(prompt) > 40:
        prompt = prompt[:39] + "…"
    return f"{plan.mode.label}: {prompt}" if prompt else f"{plan.mode.label} (seed {summary.get('seed')})"


def insertion_index(doc: Document) -> int:
    """Where a result goes in the root stack: just above the topmost image layer, so
    mask, region and control overlays stay on top of it (0 = top)."""
    for index, layer in enumerate(doc.root.children):
        if layer.is_group or (isinstance(layer, PixelLayer) and layer.role.is_image):
            return index
    return len(doc.root.children)


def insertion_point(doc: Document) -> tuple[GroupLayer, int]:
    """Where a result goes: directly above the active layer when the artist is painting
    on an image layer (paint or an earlier result, in whatever group it sits), else
    :func:`insertion_index` in the root (above the topmost image layer, under the mask,
    region and control overlays)."""
    active = doc.active
    if isinstance(active, PixelLayer) and active.role.is_image and active.parent is not None:
        try:
            return doc.index_of(active)
        except ValueError:  # not in this document (a stale reference)
            pass
    return doc.root, insertion_index(doc)


class PlaceResultCommand(AddLayer):
    """Insert a result layer: one undo step labelled "Generate", "Refine" or "Inpaint".
    The active layer is left as it was (the artist keeps painting where they were)."""

    def __init__(
        self, doc: Document, layer: Layer, index: int, label: str, parent: GroupLayer | None = None
    ) -> None:
        super().__init__(doc, layer, parent if parent is not None else doc.root, index, activate=False)
        self.label = label

    def nbytes(self) -> int:
        return self.layer.surface.nbytes() if isinstance(self.layer, PixelLayer) else 0


def place_result(
    doc: Document,
    plan: Plan,
    image: np.ndarray,
    *,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    batch_index: int = 0,
    index: int | None = None,
    alpha: np.ndarray | None = None,
) -> PixelLayer:
    """Add ``image`` (uint8 RGB at generation or area size) to ``doc`` as a new
    ``generated`` layer over ``plan.area`` and return it (``metadata``: the engine's
    ``Finished.metadata``, see :func:`result_layer`).

    One undoable command (:class:`PlaceResultCommand`) through ``doc.history``; the
    active layer does not change. The layer goes to :func:`insertion_point`, or to
    ``index`` in the root stack when given. ``alpha``: see :func:`result_pixels`.
    """
    layer = result_layer(plan, image, name=name, metadata=metadata, batch_index=batch_index, alpha=alpha)
    parent, where = insertion_point(doc) if index is None else (doc.root, index)
    doc.execute(PlaceResultCommand(doc, layer, where, plan.mode.label, parent))
    log.info("placed %r over %s", layer.name, plan.area)
    return layer

"""Regional prompts from region layers, over the generation area.

Rules (as Krita AI Diffusion builds regions from layers):

- Each visible ``region`` layer's alpha is its coverage (float in [0, 1]).
- Upper layers cut lower ones: walking the stack top first, a layer keeps only the
  coverage that the layers above it left free (``own × (1 − taken)``).
- Regions covering less than :data:`MIN_COVERAGE` of the area (0.2 %) are dropped (a
  stray dab, or a region that lies outside the area), as are regions without any text.
- The global prompt (the document's) is appended to every region's prompt
  (``"region prompt, global prompt"``; negatives are joined the same way) unless the
  document says not to (``Recipe.regions_include_prompt``): then a region generates from
  its own texts only. :func:`region_prompt` is the one place that decides the text, for
  the planner and for the window that shows it.
- When the regions together cover less than :data:`BACKGROUND_THRESHOLD` (95 %) of the
  area, a background region with the global prompt takes the rest (``1 − taken``).

Masks here are float32, over the area at the area's size or (what the plan uses) at the
generation size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import Role
from sfumato.planner.layerpixels import layer_alpha
from sfumato.planner.sizing import Size

log = logging.getLogger(__name__)

__all__ = [
    "BACKGROUND_THRESHOLD", "MIN_COVERAGE", "PlannedRegion", "join_prompts", "plan_regions", "region_prompt",
]

MIN_COVERAGE = 0.002
BACKGROUND_THRESHOLD = 0.95


@dataclass(frozen=True, eq=False)
class PlannedRegion:
    """One region over the area: a float32 mask (area or generation size) and its texts.

    ``layer_name`` is ``None`` for the background region; ``layer_id`` is the region
    layer's :attr:`~sfumato.canvas.model.layers.Layer.id` (``None`` for the background),
    how reference layers in a region's group find its mask.
    """

    mask: np.ndarray
    prompt: str
    negative: str
    layer_name: str | None
    layer_id: int | None = None

    @property
    def coverage(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0


def join_prompts(*parts: str) -> str:
    """Join non-empty prompt parts with ``", "``."""
    return ", ".join(p.strip() for p in parts if p and p.strip())


def region_prompt(own: str, document_prompt: str, include_prompt: bool = True) -> str:
    """The text a region generates from: its own, followed by the document's when
    ``include_prompt`` (for the negative prompts the same)."""
    return join_prompts(own, document_prompt) if include_prompt else join_prompts(own)


def plan_regions(
    doc: Document, area: Rect, prompt: str, negative: str, size: Size | None = None, *,
    include_prompt: bool = True,
) -> tuple[list[PlannedRegion], list[str]]:
    """The regions over ``area`` (top first, background last) and notes on what was dropped.

    ``prompt``/``negative`` are the global texts, added to each region's own when
    ``include_prompt`` (:func:`region_prompt`). Masks are at the area's size, or at
    ``size`` (the generation size) when given: each layer's alpha is scaled first and cut
    afterwards, which on a large canvas is far cheaper and what the engine needs anyway.
    Returns ``([], notes)`` when the document has no usable region layer.
    """
    notes: list[str] = []
    layers = [
        layer for layer in doc.pixel_layers(Role.REGION) if layer.effectively_visible()
    ]
    if not layers:
        return [], notes
    shape = (area.h, area.w) if size is None else (size.height, size.width)
    scaled = None if size is None else (size.width, size.height)
    taken = np.zeros(shape, np.float32)
    regions: list[PlannedRegion] = []
    for layer in layers:  # top first
        own = layer_alpha(layer, area, scaled)
        cut = own * (1.0 - taken)
        coverage = float(cut.mean()) if cut.size else 0.0
        if coverage < MIN_COVERAGE:
            notes.append(f"region {layer.name!r} dropped: it covers {coverage:.1%} of the area")
            continue
        text = region_prompt(layer.prompt, prompt, include_prompt)
        if not text:
            notes.append(f"region {layer.name!r} dropped: it has no prompt")
            continue
        taken += cut
        regions.append(PlannedRegion(
            mask=cut.astype(np.float32),
            prompt=text,
            negative=region_prompt(layer.negative, negative, include_prompt),
            layer_name=layer.name,
            layer_id=layer.id,
        ))
    if not regions:
        return [], notes
    total = float(taken.mean())
    if total < BACKGROUND_THRESHOLD:
        if prompt.strip():
            regions.append(PlannedRegion(
                mask=np.clip(1.0 - taken, 0.0, 1.0).astype(np.float32),
                prompt=prompt.strip(),
                negative=negative.strip(),
                layer_name=None,
            ))
        else:
            notes.append(
                f"regions cover {total:.0%} of the area and there is no document prompt for "
                "the rest; it follows the regions' prompts"
            )
    for note in notes:
        log.info(note)
    return regions, notes

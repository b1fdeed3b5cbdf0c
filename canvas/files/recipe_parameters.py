"""The document's recipe as ``parameters`` and back: what an export writes, what a dropped-in
picture's parameters become.

Between the document (:class:`~sfumato.canvas.model.document.Recipe`) and the summary-style dicts
of :mod:`sfumato.canvas.files.parameters`. The ranges of the recipe's numbers live here, shared
with the OpenRaster reader.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sfumato.canvas.files.parameters import format_parameters
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.vocabulary.errors import RequestError
from sfumato.vocabulary.kinds import Sampler

log = logging.getLogger(__name__)


def recipe_summary(doc: Document) -> dict[str, Any]:
    """A summary-style dict of the document's recipe (for a PNG exported from it)."""
    recipe = doc.recipe
    summary: dict[str, Any] = {"prompt": recipe.prompt, "negative": recipe.negative}
    for key in ("model", "sampler", "steps", "cfg", "seed", "strength"):
        value = getattr(recipe, key)
        if value is not None:
            summary[key] = value
    summary["width"], summary["height"] = doc.width, doc.height
    return summary


def picture_parameters(doc: Document) -> str | None:
    """``parameters`` for a picture exported from the window: the full record (steps,
    sampler, CFG, seed, model, size — what ``sfumato render`` writes, from the same
    :func:`format_parameters`) of the topmost visible generated layer; ``None`` when no
    generated layer is visible (the picture is paint, and no recipe made it)."""
    for layer in doc.layers():
        if (isinstance(layer, PixelLayer) and layer.role is Role.GENERATED and layer.generation
                and layer.effectively_visible()):
            return format_parameters(layer.generation)
    return None


def document_parameters(doc: Document) -> str | None:
    """``parameters`` text for a flattened export of ``doc``; ``None`` when it has no recipe."""
    recipe = doc.recipe
    if recipe == Recipe():
        return None
    return format_parameters(recipe_summary(doc))


#: the ranges of the recipe's numbers, shared with the OpenRaster reader: a value read
#: from another tool's text is checked against them on the way in, so Sfumato never
#: writes a file it will not read back
SEED_RANGE = (0, 2**63 - 1)
STEPS_RANGE = (1, 1000)
CFG_RANGE = (0.0, 100.0)
STRENGTH_RANGE = (0.0, 1.0)


def recipe_from_parameters(params: Mapping[str, Any], *, source: str | Path | None = None) -> Recipe:
    """A document recipe from parsed parameters (what a dropped-in PNG was made with).

    Whole numbers outside their range (``Seed: -5``, ``Steps: 0``) are dropped and
    numbers with a fraction outside theirs (``CFG scale: 500``) are clamped, each with a
    logged warning naming ``source``; a sampler Sfumato does not know is dropped.
    """
    where = f"{source}: " if source is not None else ""

    def whole(key: str, label: str, bounds: tuple[int, int]) -> int | None:
        value = params.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not math.isfinite(value) or value != int(value) or not bounds[0] <= value <= bounds[1]:
            log.warning(
                "%sparameters: %s: %s is outside %d..%d; not used", where, label, value, *bounds
            )
            return None
        return int(value)

    def fraction(key: str, label: str, bounds: tuple[float, float]) -> float | None:
        value = params.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not math.isfinite(value):
            log.warning("%sparameters: %s: %s is not a finite number; not used", where, label, value)
            return None
        if not bounds[0] <= value <= bounds[1]:
            log.warning(
                "%sparameters: %s: %s is outside %g..%g; clamped", where, label, value, *bounds
            )
        return float(min(max(value, bounds[0]), bounds[1]))

    sampler = str(params["sampler"]) if params.get("sampler") else None
    if sampler is not None:
        try:
            sampler = Sampler.from_label(sampler).value
        except RequestError:
            log.warning("%sparameters: Sampler: %r is not a sampler Sfumato knows; not used", where, sampler)
            sampler = None
    return Recipe(
        prompt=str(params.get("prompt") or ""),
        negative=str(params.get("negative") or ""),
        model=str(params["model"]) if params.get("model") else None,
        seed=whole("seed", "Seed", SEED_RANGE),
        steps=whole("steps", "Steps", STEPS_RANGE),
        cfg=fraction("cfg", "CFG scale", CFG_RANGE),
        strength=fraction("strength", "Denoising strength", STRENGTH_RANGE),
        sampler=sampler,
    )

"""Running one semantic test batch: fixed seeds, few steps, the built-in model.

Every semantic criterion is judged over the same :data:`BATCH` seeds
(``SEED, SEED + 1, ...``: one engine batch, image ``k`` uses seed ``SEED + k``) and
needs at least :data:`REQUIRED` successes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sfumato.canvas.model.document import Document
from sfumato.planner.plan import Plan, plan
from sfumato.planner.recipe import GenerationSettings

__all__ = [
    "BATCH",
    "BuiltinModel",
    "CFG",
    "MODEL_UNDERTRAINED",
    "REQUIRED",
    "SEED",
    "STEPS",
    "generate",
    "placed_pictures",
    "meaning",
    "settings",
]

#: The fixed seeds of every semantic test: one batch, image k uses seed SEED + k.
SEED = 1000
BATCH = 8
#: Fewest successes out of BATCH that a criterion needs.
REQUIRED = 7
#: Sampling settings used throughout (the built-in model's own DDIM scheduler; the same
#: steps and guidance as ``tools/eval_builtin_model.py``, so the figures compare).
STEPS = 20
CFG = 5.0

#: Escape hatch for a model that is known to be short of the criteria: while this is True,
#: a *meaning* criterion that misses its 7/8 is reported as an expected failure (xfail)
#: with its measured rates instead of turning the run red; the exactness checks (pixels
#: outside an inpaint mask, plumbing) stay hard assertions. The committed built-in model
#: passes every criterion, so it is False: a miss fails the run. Set it to True only
#: while committing a model that is measurably short, and say so in the model card.
MODEL_UNDERTRAINED = False


def meaning(successes: int, report: str, *, required: int = REQUIRED) -> None:
    """Judge a meaning criterion: ``successes`` out of :data:`BATCH` must reach ``required``.

    A miss fails the test, or — while :data:`MODEL_UNDERTRAINED` — marks it xfailed with
    the measured ``report`` (``pytest -rx`` lists them), so the gap stays visible.
    """
    if successes >= required:
        return
    if MODEL_UNDERTRAINED:
        pytest.xfail(f"built-in model is under-trained ({successes}/{BATCH} < {required}): {report}")
    raise AssertionError(report)


@dataclass(frozen=True)
class BuiltinModel:
    """The built-in model's folders as the session uses them (see ``conftest.py``)."""

    folder: Path
    controlnet: Path


def settings(prompt: str, **overrides: object) -> GenerationSettings:
    """Settings for one test batch: the built-in model, the fixed seeds, few steps."""
    values: dict[str, object] = dict(
        prompt=prompt, model="builtin", seed=SEED, steps=STEPS, cfg=CFG, batch=BATCH
    )
    values.update(overrides)
    return GenerationSettings(**values)  # type: ignore[arg-type]


def generate(engine: object, doc: Document, recipe: GenerationSettings) -> tuple[Plan, list[np.ndarray]]:
    """Plan ``doc`` with ``recipe`` and run it; returns the plan and the batch's images
    (uint8 RGB at the generation size). Fails the test when the engine reports an error."""
    planned = plan(doc, recipe)
    result = engine.run(planned.request)  # type: ignore[attr-defined]
    assert result.ok, f"the engine failed: {result.error}"
    assert len(result.images) == recipe.batch
    return planned, list(result.images)


def placed_pictures(doc: Document, planned: Plan, images: list[np.ndarray]) -> list[np.ndarray]:
    """Accept each image of the batch as the window would (``place_result``, one undo
    step), flatten the document (uint8 RGBA), and undo again; one picture per image."""
    from sfumato.canvas.render.composite import flatten
    from sfumato.planner.placement import place_result

    pictures = []
    for k, image in enumerate(images):
        place_result(doc, planned, image, batch_index=k)
        pictures.append(flatten(doc))
        doc.undo()
    return pictures

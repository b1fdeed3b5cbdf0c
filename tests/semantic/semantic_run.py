"""Running one semantic test batch: fixed seeds, few steps, the built-in model.

Every semantic criterion is judged over the same :data:`BATCH` seeds
(``SEED, SEED + 1, ...``: one engine batch, image ``k`` uses seed ``SEED + k``) and
needs at least :data:`REQUIRED` successes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sfumato.canvas.document import Document
from sfumato.planner.plan import Plan, plan
from sfumato.planner.recipe import GenerationSettings

__all__ = ["BATCH", "BuiltinModel", "CFG", "REQUIRED", "SEED", "STEPS", "generate", "settings"]

#: The fixed seeds of every semantic test: one batch, image k uses seed SEED + k.
SEED = 1000
BATCH = 8
#: Fewest successes out of BATCH that a criterion needs.
REQUIRED = 7
#: Sampling settings used throughout (the built-in model's own DDIM scheduler; the same
#: steps and guidance as ``tools/eval_builtin_model.py``, so the figures compare).
STEPS = 20
CFG = 5.0


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

"""Inpainting with the built-in model: the masked square takes the prompt's colour, and
nothing outside the mask changes.

The document (128 × 128) is a painted scene — a small yellow star at the top on a blue
background — with an inpaint-mask layer over a 32 × 32 square in the middle. The planner
generates a 64 × 64 area around it (the mask plus context: the model's native size), the
engine inpaints, and the result is placed as a layer through the paste mask.

- Inside: the mask's core (eroded by 4 px, away from the feathered seam) of the flattened
  document reads as the prompted colour in at least 7 of 8 seeds. Two prompted colours
  (red and green) serve as each other's baseline: the colour comes from the prompt.
- Outside: every pixel where the mask layer is transparent is byte-identical in the
  flattened document before and after accepting the result, for every seed.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from semantic_judges import (
    document,
    erode,
    mask_layer,
    paint_layer,
    rate,
    read_colour,
    reads_as,
    sd,
)
from semantic_run import BATCH, generate, meaning, settings
from sfumato.canvas.composite import flatten
from sfumato.canvas.geometry import Rect
from sfumato.planner.placement import place_result
from sfumato.planner.plan import Mode

log = logging.getLogger(__name__)

pytestmark = pytest.mark.semantic

SIZE = 128
HOLE = slice(48, 80)
SCENE = sd.SceneSpec(
    sd.Background(sd.BackgroundKind.FLAT, "blue"),
    (sd.ShapeSpec(sd.Shape.STAR, "yellow", sd.Position.TOP, sd.Size.SMALL),),
)


@pytest.mark.parametrize("colour", ["red", "green"])
def test_masked_square_turns_to_the_prompted_colour_and_nothing_else_changes(
    engine: object, colour: str
) -> None:
    hole = np.zeros((SIZE, SIZE), np.float32)
    hole[HOLE, HOLE] = 1.0
    doc = document(SIZE, mask_layer(hole), paint_layer("scene", sd.render(SCENE, SIZE)))
    before = flatten(doc)
    planned, images = generate(engine, doc, settings(f"a big {colour} square on a blue background"))
    assert planned.mode is Mode.INPAINT
    assert planned.area.contains(Rect(48, 48, 32, 32)), planned.area
    core = erode(hole > 0.5, 4)
    outside = hole == 0
    assert not reads_as(before[..., :3][core], colour)
    inside_ok, readings, identical = [], [], []
    for k, image in enumerate(images):
        place_result(doc, planned, image, batch_index=k)
        after = flatten(doc)
        doc.undo()
        identical.append(bool(np.array_equal(after[outside], before[outside])))
        inside_ok.append(reads_as(after[..., :3][core], colour))
        readings.append(str(read_colour(after[..., :3][core])))
    report = (
        f"inpaint {colour}: inside {rate(inside_ok)}, outside byte-identical {rate(identical)} "
        f"(area {planned.area}, generated at {planned.size})\n"
        + "\n".join(f"  seed +{k}: {r}" for k, r in enumerate(readings))
    )
    print(report)
    assert all(identical) and len(identical) == BATCH, report
    assert np.array_equal(flatten(doc), before), "undo must restore the document"
    meaning(sum(inside_ok), report)

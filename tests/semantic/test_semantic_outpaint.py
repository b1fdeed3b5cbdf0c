"""Expand with the built-in model: a 64-px picture whose canvas grew to 96 × 64 on the
right (Image → Canvas Size) has its new border painted in the picture's own background,
and the picture stays exact.

The picture is a small yellow star on a flat blue background. The prompt names only the
star ("a small yellow star"), not the background, so a blue border can only come from the
picture beside it — through the planner's Expand (an inpaint of the bare canvas, started
from a Telea infill) and the engine's masked loop. Judged per seed on the accepted result:

- the picture's 64 × 64 pixels are byte-identical in the flattened document;
- no pixel of the canvas is left transparent;
- the border away from the join (x ≥ 72) *reads as* blue (the judges' hue rule) in at
  least 7 of 8 seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from semantic_judges import document, paint_layer, rate, read_colour, reads_as, sd
from semantic_run import BATCH, generate, meaning, placed_pictures, settings
from sfumato.canvas.edits.canvas_size import Anchor, resize_canvas_to
from sfumato.canvas.render.composite import flatten
from sfumato.inference.request import FillMode
from sfumato.planner.plan import Mode

pytestmark = pytest.mark.semantic

SIDE = 64
SCENE = sd.SceneSpec(
    sd.Background(sd.BackgroundKind.FLAT, "blue"),
    (sd.ShapeSpec(sd.Shape.STAR, "yellow", sd.Position.CENTER, sd.Size.SMALL),),
)


def test_a_grown_canvas_is_painted_in_the_pictures_background(engine: object) -> None:
    doc = document(SIDE, paint_layer("picture", sd.render(SCENE, SIDE)))
    resize_canvas_to(doc, 96, SIDE, Anchor.LEFT)
    before = flatten(doc)
    assert (before[:, SIDE:, 3] == 0).all()  # the new border is bare
    planned, images = generate(engine, doc, settings("a small yellow star"))
    assert planned.mode is Mode.EXPAND
    assert planned.request.inpaint is not None and planned.request.inpaint.fill is FillMode.TELEA
    exact, opaque, blue, readings = [], [], [], []
    for picture in placed_pictures(doc, planned, images):
        exact.append(bool(np.array_equal(picture[:, :SIDE], before[:, :SIDE])))
        opaque.append(bool((picture[..., 3] == 255).all()))
        border = picture[:, 72:, :3]
        blue.append(reads_as(border, "blue"))
        readings.append(str(read_colour(border)))
    report = (
        f"expand: picture exact {rate(exact)}, opaque {rate(opaque)}, border blue {rate(blue)} "
        f"(area {planned.area}, generated at {planned.size})\n"
        + "\n".join(f"  seed +{k}: {r}" for k, r in enumerate(readings))
    )
    print(report)
    assert all(exact) and all(opaque) and len(exact) == BATCH, report
    meaning(sum(blue), report)

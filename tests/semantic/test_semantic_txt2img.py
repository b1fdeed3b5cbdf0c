"""txt2img with the built-in model: the background and the shape take the prompt's colours.

Each case is generated twice over the fixed seeds: with its prompt, and with the two
colours swapped (the baseline). Both must come out right in at least 7 of 8 seeds, so the
colours demonstrably come from the prompt (a model or pipeline that ignores the prompt
cannot paint the background blue for one prompt and red for the other on the same seeds).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from semantic_judges import dilate, document, erode, rate, read_colour, reads_as, sd
from semantic_run import BATCH, generate, meaning, placed_pictures, settings
from sfumato.planner.plan import Mode

log = logging.getLogger(__name__)

pytestmark = pytest.mark.semantic

SIZE = 64  # the built-in model's native side: generated without any rescaling

#: (shape colour, shape, background colour); paired colours are >= 90° of hue apart. With
#: the swapped runs that is six colour pairings over three shapes.
CASES = [
    ("red", sd.Shape.CIRCLE, "blue"),
    ("yellow", sd.Shape.SQUARE, "purple"),
    ("green", sd.Shape.TRIANGLE, "pink"),
]


def shape_areas(spec: sd.SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside) boolean masks at SIZE: the shape's core (eroded 2 px) and the
    background away from it (4 px clear of any coverage)."""
    cover = sd.shape_mask(spec.shapes[0], SIZE)
    return erode(cover > 0.5, 2), ~dilate(cover > 0.05, 4)


def _judge(engine: object, shape_colour: str, shape: sd.Shape, background: str) -> list[tuple[bool, bool, str]]:
    spec = sd.SceneSpec(
        sd.Background(sd.BackgroundKind.FLAT, background), (sd.ShapeSpec(shape, shape_colour),)
    )
    prompt = sd.caption(spec)
    doc = document(SIZE)
    planned, images = generate(engine, doc, settings(prompt))
    assert planned.mode is Mode.TXT2IMG
    inside, outside = shape_areas(spec)
    out = []
    for picture in (p[..., :3] for p in placed_pictures(doc, planned, images)):
        out.append((
            reads_as(picture[outside], background),
            reads_as(picture[inside], shape_colour),
            f"bg {read_colour(picture[outside])}; shape {read_colour(picture[inside])}",
        ))
    log.info("%r: %s", prompt, [o[2] for o in out])
    return out


@pytest.mark.parametrize(("shape_colour", "shape", "background"), CASES, ids=lambda v: getattr(v, "value", v))
def test_background_and_shape_follow_the_prompt(
    engine: object, shape_colour: str, shape: sd.Shape, background: str
) -> None:
    results = _judge(engine, shape_colour, shape, background)
    swapped = _judge(engine, background, shape, shape_colour)
    ok = [bg and fg for bg, fg, _ in results]
    ok_swapped = [bg and fg for bg, fg, _ in swapped]
    report = (
        f"{shape_colour} {shape.value} on {background}: {rate(ok)} "
        f"(background {rate([r[0] for r in results])}, shape {rate([r[1] for r in results])}); "
        f"swapped colours: {rate(ok_swapped)}\n"
        + "\n".join(f"  seed +{k}: {a[2]} | swapped: {b[2]}" for k, (a, b) in enumerate(zip(results, swapped)))
    )
    print(report)
    assert len(ok) == BATCH
    meaning(min(sum(ok), sum(ok_swapped)), report)

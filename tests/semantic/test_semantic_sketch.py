"""Sketch control with the built-in model: the generated shape follows the scribble.

The document has a control layer (kind scribble) holding a hand-drawn-looking outline —
dark strokes on a transparent layer, as a user sketches — of a *big* shape *off centre*,
while the prompt names the shape without a position (so without the sketch the model
draws it medium-sized in the centre). The planner preprocesses the sketch (white lines on
black at the generation size) and the engine runs the built-in scribble ControlNet.

Measure — **stroke recall**: the share of the sketch's stroke pixels (darker than 50 %
grey, at the 64 px generation size) that lie within 2 px (Chebyshev) of an edge of the
flattened result, where an edge is an RGB gradient magnitude above 60 (central
differences; see ``semantic_judges``).

Baseline: the same document and seeds with the control layer hidden (the planner then
sends no control).

Success for a seed: recall with the sketch >= :data:`MIN_RECALL` *and* at least
:data:`MIN_GAIN` above the same seed's recall without it. Required in 7 of 8 seeds.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from semantic_judges import control_layer, document, rate, sd, stroke_recall
from semantic_run import generate, meaning, settings
from sfumato.canvas.render.composite import flatten
from sfumato.planner.placement import place_result

log = logging.getLogger(__name__)

pytestmark = pytest.mark.semantic

SIZE = 64
MIN_RECALL = 0.5
MIN_GAIN = 0.2

CASES = [
    (sd.ShapeSpec(sd.Shape.SQUARE, "red", sd.Position.RIGHT, sd.Size.BIG), "white"),
    (sd.ShapeSpec(sd.Shape.CIRCLE, "blue", sd.Position.LEFT, sd.Size.BIG), "yellow"),
]


def _recalls(engine: object, doc: object, prompt: str, strokes: np.ndarray, *, with_control: bool) -> list[float]:
    sketch = doc.find("sketch")  # type: ignore[attr-defined]
    sketch.visible = with_control
    planned, images = generate(engine, doc, settings(prompt))  # type: ignore[arg-type]
    assert len(planned.controls) == (1 if with_control else 0), planned.notes
    out = []
    for k, image in enumerate(images):
        place_result(doc, planned, image, batch_index=k)  # type: ignore[arg-type]
        picture = flatten(doc)[..., :3]  # type: ignore[arg-type]
        doc.undo()  # type: ignore[attr-defined]
        out.append(stroke_recall(picture, strokes))
    return out


@pytest.mark.parametrize(("shape", "background"), CASES, ids=lambda v: getattr(v, "colour", v))
def test_generated_edges_follow_the_scribble(engine: object, shape: sd.ShapeSpec, background: str) -> None:
    spec = sd.SceneSpec(sd.Background(sd.BackgroundKind.FLAT, background), (shape,))
    drawing = sd.scribble(spec, SIZE, rng=np.random.default_rng(7))
    strokes = drawing[..., 0] < 128
    doc = document(SIZE, control_layer(drawing))
    prompt = f"a {shape.colour} {shape.shape.value} on a {background} background"
    with_sketch = _recalls(engine, doc, prompt, strokes, with_control=True)
    without = _recalls(engine, doc, prompt, strokes, with_control=False)
    ok = [w >= MIN_RECALL and w - b >= MIN_GAIN for w, b in zip(with_sketch, without)]
    report = (
        f"sketch of a big {shape.shape.value} {shape.position.name.lower()}, prompt {prompt!r}: "
        f"{rate(ok)}; stroke recall with the sketch {np.mean(with_sketch):.2f} "
        f"(per seed {', '.join(f'{v:.2f}' for v in with_sketch)}), without "
        f"{np.mean(without):.2f} (per seed {', '.join(f'{v:.2f}' for v in without)})"
    )
    print(report)
    meaning(sum(ok), report)

"""Regional prompts with the built-in model: two region layers, each half in its colour.

The document has no global prompt and two region layers painted over its left and right
halves, with the prompts "<A> background" and "<B> background". The planner turns them
into two regions (no background region: they cover everything), the engine attends each
half to its own prompt only. Judged on the flattened result, away from the seam (columns
2..25 and 38..61 of 64). The baseline is the same document with the two prompts swapped:
on the same seeds the colours must swap too, in at least 7 of 8 seeds.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from semantic_judges import document, rate, read_colour, reads_as, region_layer
from semantic_run import generate, meaning, placed_pictures, settings

log = logging.getLogger(__name__)

pytestmark = pytest.mark.semantic

SIZE = 64
MARGIN = 6  # columns left out on either side of the seam (and 2 at the borders)

PAIRS = [("red", "blue"), ("yellow", "purple")]


def cores() -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the judged columns of the left and the right half."""
    core_left = np.zeros((SIZE, SIZE), bool)
    core_left[:, 2 : SIZE // 2 - MARGIN] = True
    return core_left, core_left[:, ::-1]


def _halves(left: str, right: str, engine: object) -> list[tuple[bool, bool, str]]:
    cover = np.zeros((SIZE, SIZE), np.float32)
    cover[:, : SIZE // 2] = 1.0
    doc = document(
        SIZE,
        region_layer("left", cover, f"{left} background"),
        region_layer("right", 1.0 - cover, f"{right} background"),
    )
    planned, images = generate(engine, doc, settings(""))
    assert [r.layer_name for r in planned.regions] == ["left", "right"], planned.regions
    core_left, core_right = cores()
    out = []
    for picture in (p[..., :3] for p in placed_pictures(doc, planned, images)):
        out.append((
            reads_as(picture[core_left], left),
            reads_as(picture[core_right], right),
            f"left {read_colour(picture[core_left])}; right {read_colour(picture[core_right])}",
        ))
    return out


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_two_regions_take_their_colours_and_swap_with_the_prompts(engine: object, a: str, b: str) -> None:
    straight = _halves(a, b, engine)
    swapped = _halves(b, a, engine)
    ok = [lo and ro for lo, ro, _ in straight]
    ok_swapped = [lo and ro for lo, ro, _ in swapped]
    both = [x and y for x, y in zip(ok, ok_swapped)]
    report = (
        f"{a} | {b}: {rate(ok)} (left {rate([s[0] for s in straight])}, right "
        f"{rate([s[1] for s in straight])}); swapped {b} | {a}: {rate(ok_swapped)}; "
        f"both on the same seed: {rate(both)}\n"
        + "\n".join(f"  seed +{k}: {s[2]} | swapped: {w[2]}" for k, (s, w) in enumerate(zip(straight, swapped)))
    )
    print(report)
    meaning(sum(both), report)

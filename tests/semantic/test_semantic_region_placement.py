"""A region painted in one quadrant puts its shape in that quadrant (issue 17, item 5).

The document has the main prompt "<background colour> background" and one region layer
covering a quadrant, with the prompt "<article> <colour> <shape>" (no position words: the
region says where). The planner builds it as a user's document is built — the region's
prompt followed by the main prompt, a background region with the main prompt for the
rest — and the engine attends each part to its prompt only.

Judged per seed on the placed picture: the pixels reading as the shape's colour (HSV
hue within 30° of the colour's, saturated; see ``semantic_judges``) must cover at least
:data:`MIN_INSIDE` of the quadrant, and at least :data:`MIN_SHARE` of all such pixels
must lie in the quadrant. The baseline is the same document with the region moved to the
opposite quadrant on the same seeds: the shape must follow it (both must hold).
"""

from __future__ import annotations

import numpy as np
import pytest
from semantic_judges import HUE_TOLERANCE, SATURATION, document, rate, region_layer, sd
from semantic_run import generate, meaning, placed_pictures, settings

pytestmark = pytest.mark.semantic

SIZE = 64
HALF = SIZE // 2
MIN_INSIDE = 0.08  # of the quadrant's pixels (a small shape there covers about 12 %)
MIN_SHARE = 0.75  # of the shape-coloured pixels in the picture

QUADRANTS = {
    "top-left": np.s_[:HALF, :HALF],
    "bottom-right": np.s_[HALF:, HALF:],
    "top-right": np.s_[:HALF, HALF:],
    "bottom-left": np.s_[HALF:, :HALF],
}
OPPOSITE = {"top-left": "bottom-right", "bottom-right": "top-left", "top-right": "bottom-left",
            "bottom-left": "top-right"}
CASES = [("green", "triangle", "blue", "top-left"), ("yellow", "circle", "purple", "bottom-left")]


def coloured(picture: np.ndarray, name: str) -> np.ndarray:
    """Boolean map of the pixels that read as the table colour ``name``."""
    hsv = sd.rgb_to_hsv(picture)
    hue = sd.colour_of(name).hue
    assert hue is not None
    return (hsv[..., 1] > SATURATION) & (hsv[..., 2] > 0.25) & (sd.hue_distance(hsv[..., 0], hue) <= HUE_TOLERANCE)


def _placed(engine: object, colour: str, shape: str, background: str, quadrant: str) -> list[tuple[bool, str]]:
    cover = np.zeros((SIZE, SIZE), np.float32)
    cover[QUADRANTS[quadrant]] = 1.0
    doc = document(SIZE, region_layer("region", cover, f"{sd.article(colour)} {colour} {shape}"))
    planned, images = generate(engine, doc, settings(f"{sd.article(background)} {background} background"))
    assert [r.layer_name for r in planned.regions] == ["region", None], planned.regions
    out = []
    for picture in (p[..., :3] for p in placed_pictures(doc, planned, images)):
        hits = coloured(picture, colour)
        inside = int(hits[QUADRANTS[quadrant]].sum())
        total = int(hits.sum())
        ok = inside >= MIN_INSIDE * HALF * HALF and inside >= MIN_SHARE * max(total, 1)
        out.append((ok, f"{inside} of {total} {colour} px in the {quadrant} quadrant"))
    return out


@pytest.mark.parametrize(("colour", "shape", "background", "quadrant"), CASES)
def test_a_region_places_its_shape_in_its_quadrant(
    engine: object, colour: str, shape: str, background: str, quadrant: str
) -> None:
    here = _placed(engine, colour, shape, background, quadrant)
    there = _placed(engine, colour, shape, background, OPPOSITE[quadrant])
    both = [a and b for (a, _), (b, _) in zip(here, there)]
    report = (
        f"{colour} {shape} on {background}: {quadrant} {rate([ok for ok, _ in here])}, "
        f"{OPPOSITE[quadrant]} {rate([ok for ok, _ in there])}, both on the same seed {rate(both)}\n"
        + "\n".join(f"  seed +{k}: {a[1]} | {b[1]}" for k, (a, b) in enumerate(zip(here, there)))
    )
    print(report)
    meaning(sum(both), report)

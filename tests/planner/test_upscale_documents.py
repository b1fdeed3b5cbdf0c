"""Upscale & refine of a document: each tile's request gets the document's regions and
control layers over the tile (document coordinates = the tile divided by the scale);
scale 1 refines at the picture's own size; when a whole-canvas Refine is too large."""

from __future__ import annotations

import numpy as np
import pytest
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.model.layers import ControlSettings, Role
from sfumato.inference.request import GenerationRequest
from sfumato.planner.errors import PlanError
from sfumato.planner.families import FamilyInfo
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.upscale import (
    plan_upscale,
    tile_area,
    tiled_refine_reason,
    upscale_picture,
    upscale_record,
)
from sfumato.vocabulary.kinds import ControlKind

FAMILY = FamilyInfo.for_native("sd15", 64)
SETTINGS = GenerationSettings(prompt="a painting", negative="blurry", model="builtin", model_family="sd15",
                              seed=7, steps=4, cfg=1.0)  # fmt: skip


def two_regions(width: int = 64, height: int = 32, *extra):  # noqa: ANN002, ANN201
    """Paint, a left region (red) and a right region (blue), each half the width."""
    half = width // 2
    left = layer("left", rgba(height, half, alpha=255), role=Role.REGION, prompt="red")
    right = layer("right", rgba(height, width - half, alpha=255), role=Role.REGION, x=half, prompt="blue")
    paint = layer("paint", gradient(height, width))
    return document(width, height, *extra, left, right, paint)


def refine(doc, scale: int, **kw):  # noqa: ANN001, ANN003, ANN201
    """The tile requests of refining ``doc`` with a stub runner (returns the init)."""
    plan = plan_upscale(doc.width, doc.height, scale, SETTINGS, family=FAMILY, tile=64, overlap=16,
                        document=doc, **kw)  # fmt: skip
    requests: list[GenerationRequest] = []

    def run_tile(request: GenerationRequest, on_step) -> np.ndarray:  # noqa: ANN001
        requests.append(request)
        assert request.init is not None
        return request.init.image

    picture = np.full((doc.height, doc.width, 3), 128, np.uint8)
    upscale_picture(picture, plan, run_tile=run_tile)
    return plan, requests


def prompts(request: GenerationRequest) -> list[str]:
    return [r.prompt for r in request.regions]


def test_each_tile_gets_the_regions_over_it_cropped() -> None:
    plan, requests = refine(two_regions(), 2)  # 128x64 in tiles at x = 0, 32, 64
    assert [(t.x, t.w) for t in plan.grid] == [(0, 64), (32, 64), (64, 64)]
    first, middle, last = requests
    assert prompts(first) == ["red, a painting"]  # wholly inside one region: that region alone
    assert prompts(last) == ["blue, a painting"]
    assert first.regions[0].mask.min() == 1.0 and last.regions[0].mask.min() == 1.0
    assert prompts(middle) == ["red, a painting", "blue, a painting"]
    red, blue = (r.mask for r in middle.regions)
    assert red.shape == (64, 64)
    # the boundary at output x = 64 (tile column 32), softened over a pixel by the scaling
    assert red[:, :31].min() == 1.0 and red[:, 33:].max() == 0.0
    assert blue[:, :31].max() == 0.0 and blue[:, 33:].min() == 1.0
    assert all(r.negative == "blurry" for r in middle.regions)


def test_a_scale_that_does_not_divide_the_tiles_crops_them_exactly() -> None:
    plan, requests = refine(two_regions(), 3)  # 192x96: tiles start at x = 0, 42, 85, 128
    tile = plan.grid.tiles[1]
    area = tile_area(tile, 3, 64, 32)
    assert (area.x, area.w) == (14, 22)  # output 42..106 lies over document 14..35.33
    red = requests[1].regions[0].mask
    boundary = 96 - tile.x  # the regions meet at document x = 32, output 96
    assert red[:, : boundary - 1].min() > 0.99 and red[:, boundary + 1 :].max() < 0.01
    assert prompts(requests[0]) == ["red, a painting"] and prompts(requests[-1]) == ["blue, a painting"]


def test_a_region_covering_a_sliver_of_a_tile_is_dropped_there() -> None:
    # a 1-px column of the right region reaches into the first tile's area: below MIN_COVERAGE
    left = layer("left", rgba(32, 40, alpha=255), role=Role.REGION, prompt="red")
    right = layer("right", rgba(32, 24, alpha=255), role=Role.REGION, x=40, prompt="blue")
    doc = document(64, 32, layer("blip", rgba(1, 1, alpha=255), role=Role.REGION, x=1, y=1, prompt="dot"),
                   left, right, layer("paint", gradient(32, 64)))  # fmt: skip
    _plan, requests = refine(doc, 2)
    assert prompts(requests[0]) == ["red, a painting"]  # the 1-px dot is 0.1 % of the tile: dropped


def test_controls_are_cropped_per_tile() -> None:
    bar = rgba(32, 64, alpha=0)
    bar[:, 40:42] = (0, 0, 0, 255)  # document x = 40..42 → output 80..84
    ctl = layer("sketch", bar, role=Role.CONTROL, control=ControlSettings(ControlKind.SCRIBBLE, strength=0.7))
    _plan, requests = refine(two_regions(64, 32, ctl), 2)
    assert requests[0].controls == ()  # nothing painted over the first tile
    for request, start in ((requests[1], 80 - 32), (requests[2], 80 - 64)):
        (spec,) = request.controls
        assert spec.kind is ControlKind.SCRIBBLE and spec.strength == 0.7
        assert spec.image.shape == (64, 64, 3)
        lit = np.flatnonzero(spec.image[..., 0].max(axis=0) > 127)
        assert lit.min() >= start - 1 and lit.max() <= start + 4


def test_a_flat_picture_keeps_one_prompt() -> None:
    plan = plan_upscale(64, 32, 2, SETTINGS, family=FAMILY, tile=64, overlap=16)
    seen: list[GenerationRequest] = []

    def run_tile(request: GenerationRequest, on_step) -> np.ndarray:  # noqa: ANN001
        seen.append(request)
        return request.init.image

    upscale_picture(np.zeros((32, 64, 3), np.uint8), plan, run_tile=run_tile)
    assert len(seen) == 3 and all(r.regions == () and r.controls == () for r in seen)


def test_scale_one_refines_at_the_same_size() -> None:
    doc = two_regions(128, 64)
    plan, requests = refine(doc, 1)
    assert plan.size == plan.source and plan.scale == 1
    assert len(requests) == len(plan.grid) > 1
    assert prompts(requests[0]) == ["red, a painting"]
    with pytest.raises(PlanError, match="needs a model"):
        plan_upscale(128, 64, 1)
    record = upscale_record(plan)
    assert record["extra"]["Upscale"] == "1x" and record["prompt"] == "a painting"


def test_tiled_refine_reason_says_when_a_refine_is_generated_small() -> None:
    assert tiled_refine_reason(64, 64, FAMILY) is None
    assert tiled_refine_reason(80, 64, FAMILY) is None  # within max_side (80)
    reason = tiled_refine_reason(256, 256, FAMILY)
    assert reason is not None and "256×256" in reason and "tiles" in reason
    assert tiled_refine_reason(100_000, 64, FAMILY) is not None  # beyond one go: tiles still work

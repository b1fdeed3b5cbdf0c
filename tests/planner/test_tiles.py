"""Tiles cover a picture exactly and their blend has no seam and no gain (planner/tiles.py,
planner/upscale.py's tile loop with a stubbed model)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.inference.errors import CancelledError
from sfumato.planner.errors import PlanError
from sfumato.planner.families import FamilyInfo
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.tiles import TileBlender, axis_spans, axis_weights, tile_grid
from sfumato.planner.upscale import UpscaleProgress, plan_upscale, tile_seed, upscale_picture

BUILTIN_LIKE = FamilyInfo.for_native("sd15", 64)


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(1, 5000),
    tile=st.integers(8, 1024),
    overlap_fraction=st.floats(0.0, 0.99),
)
def test_spans_cover_the_side_exactly_with_the_overlap(length: int, tile: int, overlap_fraction: float) -> None:
    overlap = min(tile - 1, int(tile * overlap_fraction))
    spans = axis_spans(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length  # first at 0, last flush with the edge
    for start, end in spans:
        assert end - start == min(tile, length)
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert s0 < s1 and e0 < e1
        assert e0 - s1 >= overlap  # neighbours overlap by at least the overlap asked
        assert (s1 - s0) <= tile - overlap
    if len(spans) > 1:  # the fewest tiles: one fewer could not keep the overlap
        assert (len(spans) - 1) * (tile - overlap) < length - overlap
    strides = {s1 - s0 for (s0, _), (s1, _) in zip(spans, spans[1:])}
    assert max(strides, default=0) - min(strides, default=0) <= 1  # spread evenly
    weights = axis_weights(spans, length)
    total = np.zeros(length)
    for (s, e), w in zip(spans, weights):
        assert (w > 0).all()
        total[s:e] += w
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 300), h=st.integers(1, 300), tile=st.integers(16, 96), overlap=st.integers(0, 40))
def test_grid_weights_sum_to_one_and_a_constant_blends_exactly(w: int, h: int, tile: int, overlap: int) -> None:
    overlap = min(overlap, tile // 2)
    grid = tile_grid(w, h, tile, overlap)
    total = np.zeros((h, w))
    covered = np.zeros((h, w), dtype=int)
    for t in grid:
        total[t.slices] += grid.weight(t)
        covered[t.slices] += 1
    assert (covered >= 1).all()
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    colour = np.array([201, 7, 128], dtype=np.uint8)
    blender = TileBlender(grid)
    for t in grid:
        blender.add(t, np.broadcast_to(colour, (t.h, t.w, 3)))
    out = blender.result()
    assert (out == colour).all()


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 260), h=st.integers(1, 260), tile=st.integers(16, 80), overlap=st.integers(0, 40),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_the_streaming_blend_equals_the_weighted_sum(w: int, h: int, tile: int, overlap: int, seed: int) -> None:
    """Random tile results: rounding each pixel as soon as its last tile is in gives the same
    bytes as summing every weighted tile over the whole picture first."""
    overlap = min(overlap, tile // 2)
    grid = tile_grid(w, h, tile, overlap)
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (t.h, t.w, 3), dtype=np.uint8) for t in grid]
    total = np.zeros((h, w, 3), np.float32)
    blender = TileBlender(grid)
    for t, image in zip(grid, images):
        total[t.slices] += image.astype(np.float32) * grid.weight(t)[..., None]
        blender.add(t, image)
    expected = np.clip(np.rint(total), 0, 255).astype(np.uint8)
    assert np.abs(blender.result().astype(int) - expected.astype(int)).max() <= 1  # float order only
    rows = grid.rows
    most = max((rows[i][1] - rows[i + 1][0] for i in range(len(rows) - 1)), default=0)
    assert blender.band_bytes <= (most * w + tile * tile) * 3 * 4  # the open overlaps, never a tile row


def test_bad_tiles_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        axis_spans(100, 32, 32)
    with pytest.raises(ValueError, match="empty"):
        axis_spans(0, 32, 4)
    grid = tile_grid(100, 100, 64, 16)
    blender = TileBlender(grid)
    tiles = list(grid)
    with pytest.raises(ValueError, match="in order"):
        blender.add(tiles[1], np.zeros((64, 64, 3), np.uint8))


def _identity_run(calls: list) -> object:
    def run(request, on_step):  # noqa: ANN001, ANN202
        calls.append(request)
        on_step(1, 2)
        on_step(2, 2)
        return np.array(request.init.image)

    return run


def test_identity_refine_of_a_constant_picture_is_exact() -> None:
    """A model stubbed to return its init: the upscaled picture comes back byte for byte."""
    picture = np.full((40, 50, 3), (30, 140, 250), dtype=np.uint8)
    settings_ = GenerationSettings(prompt="a painting", model="builtin", seed=5, steps=4)
    plan = plan_upscale(50, 40, 4, settings_, family=BUILTIN_LIKE, loras=lambda: ())
    assert plan.refine and plan.size.width == 200 and plan.size.height == 160
    calls: list = []
    progress: list[UpscaleProgress] = []
    out = upscale_picture(picture, plan, run_tile=_identity_run(calls), on_progress=progress.append)
    assert out.shape == (160, 200, 3)
    assert (out == picture[0, 0]).all()
    assert len(calls) == len(plan.grid)
    assert [c.seed for c in calls] == [tile_seed(5, i) for i in range(len(calls))]
    assert all(c.init.strength == 0.3 and (c.width, c.height) == (64, 64) for c in calls)
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_identity_refine_of_a_gradient_has_no_seam() -> None:
    """Identity tiles over a smooth picture: the blend returns it within rounding."""
    y, x = np.mgrid[0:96, 0:128]
    picture = np.stack([x * 2, y * 2, (x + y)], axis=-1).clip(0, 255).astype(np.uint8)
    plan = plan_upscale(128, 96, 2, GenerationSettings(prompt="p", model="builtin", seed=1),
                        family=BUILTIN_LIKE, overlap=16, loras=lambda: ())  # fmt: skip
    from sfumato.planner.upscale import enlarge

    large = enlarge(picture, plan.size)
    out = upscale_picture(picture, plan, run_tile=_identity_run([]))
    assert np.abs(out.astype(int) - large.astype(int)).max() <= 1


def test_cancel_between_tiles() -> None:
    class Flag:
        def __init__(self) -> None:
            self.set_ = False

        def is_set(self) -> bool:
            return self.set_

    flag = Flag()
    calls: list = []

    def run(request, on_step):  # noqa: ANN001, ANN202
        calls.append(request)
        flag.set_ = True
        return np.array(request.init.image)

    plan = plan_upscale(64, 64, 2, GenerationSettings(prompt="p", model="builtin"), family=BUILTIN_LIKE, loras=lambda: ())
    with pytest.raises(CancelledError):
        upscale_picture(np.zeros((64, 64, 3), np.uint8), plan, run_tile=run, cancel=flag)
    assert len(calls) == 1


def test_plan_refuses_with_a_sentence() -> None:
    with pytest.raises(PlanError, match="scale"):
        plan_upscale(10, 10, 5)
    with pytest.raises(PlanError, match="pixels a side"):
        plan_upscale(5000, 10, 4)
    with pytest.raises(PlanError, match="overlap"):
        plan_upscale(10, 10, 2, GenerationSettings(prompt="p", model="builtin"), family=BUILTIN_LIKE, overlap=40)
    with pytest.raises(PlanError, match="multiple of 8"):
        plan_upscale(10, 10, 2, GenerationSettings(prompt="p", model="builtin"), family=BUILTIN_LIKE, tile=60)
    with pytest.raises(PlanError, match="strength"):
        plan_upscale(10, 10, 2, GenerationSettings(prompt="p", model="builtin"), family=BUILTIN_LIKE, strength=0)
    plain = plan_upscale(10, 10, 3)
    assert not plain.refine and plain.size.width == 30


def test_a_larger_tile_is_generated_at_the_model_size_with_a_note() -> None:
    plan = plan_upscale(100, 100, 2, GenerationSettings(prompt="p", model="builtin"), family=BUILTIN_LIKE,
                        tile=128, loras=lambda: ())  # fmt: skip
    assert (plan.template.width, plan.template.height) == (64, 64)
    assert any("--tile 64" in note for note in plan.notes)

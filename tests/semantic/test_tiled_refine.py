"""Upscale & refine with the built-in model: a 64 px scene enlarged 4× (Lanczos) to 256 px
and refined in 64 px tiles (the model's native size, 16 px overlap, 25 tiles) at strength
0.3, through the planner's tile loop (:mod:`sfumato.planner.upscale`) and the engine.

- **Meaning**: each shape keeps its colour (its pixels eroded 6 px read as the shape's
  colour, the background's as the background's) in at least 7 of 8 seeds.
- **No seam**: the seam score — the mean gradient magnitude across the tiles' borders
  (the edges of every overlap band, where a tile's contribution starts) divided by the
  mean elsewhere — is at most 1.2 in every seed. The same tiles pasted without the blend
  (each over the one before) are reported beside it, so the score is seen to catch a seam.
"""

from __future__ import annotations

import numpy as np
import pytest
from semantic_judges import erode, rate, read_colour, reads_as, sd
from semantic_run import BATCH, CFG, SEED, STEPS, meaning
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.tiles import TileGrid
from sfumato.planner.upscale import plan_upscale, upscale_picture

pytestmark = [pytest.mark.semantic, pytest.mark.slow]

SOURCE, SCALE = 64, 4
SIDE = SOURCE * SCALE
MAX_SEAM = 1.2
CAPTION = "a red circle on the left and a blue square on the right on a white background"


def seam_lines(grid: TileGrid) -> tuple[list[int], list[int]]:
    """Columns and rows where a tile's contribution starts or ends (inside the picture)."""
    xs = sorted({s for s, _ in grid.columns[1:]} | {e for _, e in grid.columns[:-1]})
    ys = sorted({s for s, _ in grid.rows[1:]} | {e for _, e in grid.rows[:-1]})
    return xs, ys


def seam_score(picture: np.ndarray, xs: list[int], ys: list[int]) -> float:
    """Mean |step| across the seam lines / mean |step| everywhere else (both directions)."""
    p = picture.astype(np.float64)
    gx = np.linalg.norm(p[:, 1:] - p[:, :-1], axis=-1)  # step between columns x-1 and x: index x-1
    gy = np.linalg.norm(p[1:] - p[:-1], axis=-1)
    at_x = np.zeros(gx.shape[1], bool)
    at_x[[x - 1 for x in xs]] = True
    at_y = np.zeros(gy.shape[0], bool)
    at_y[[y - 1 for y in ys]] = True
    across = np.concatenate([gx[:, at_x].ravel(), gy[at_y].ravel()])
    inside = np.concatenate([gx[:, ~at_x].ravel(), gy[~at_y].ravel()])
    return float(across.mean() / max(inside.mean(), 1e-6))


def test_tiled_refine_keeps_each_shape_and_shows_no_seam(engine: object) -> None:
    from sfumato.inference.events import Progress

    scene = sd.parse_caption(CAPTION)
    source = sd.render(scene, SOURCE)
    masks = [erode(sd.shape_mask(s, SIDE) > 0.5, 6) for s in scene.shapes]
    background = erode(~np.any([sd.shape_mask(s, SIDE) > 0.05 for s in scene.shapes], axis=0), 6)
    kept, seams, hard_seams, lines = [], [], [], []
    # Every seed enlarges the same source, so tile i of seed SEED + k has the same init as
    # tile i of seed SEED and the seed SEED + k + i: image k of one engine batch of tile i
    # (the engine's batch convention). The first seed's loop runs each tile as a batch of
    # BATCH; the other seeds' loops are served image k of it (checked to be their request).
    batches: dict[int, tuple[object, tuple[np.ndarray, ...]]] = {}
    for k in range(BATCH):
        settings = GenerationSettings(prompt=CAPTION, model="builtin", seed=SEED + k, steps=STEPS, cfg=CFG)
        plan = plan_upscale(SOURCE, SOURCE, SCALE, settings, overlap=16)
        assert plan.grid is not None and len(plan.grid) == 25 and plan.grid.tile == 64
        tiles: list[np.ndarray] = []
        steps: list[int] = []

        def run_tile(request, on_step, k=k, tiles=tiles, steps=steps):  # noqa: ANN001, ANN202
            index = len(tiles)
            if k == 0:
                result = engine.run(  # type: ignore[attr-defined]
                    request.replace(batch=BATCH), lambda e: isinstance(e, Progress) and steps.append(e.step)
                )
                assert result.ok, result.error
                batches[index] = (request, result.images)
            first, images = batches[index]
            assert request == first.replace(seed=first.seed + k)  # type: ignore[attr-defined]
            tiles.append(images[k])
            return images[k]

        out = upscale_picture(source, plan, run_tile=run_tile)
        assert out.shape == (SIDE, SIDE, 3) and (steps or k > 0)
        hard = np.zeros_like(out)
        for tile, image in zip(plan.grid, tiles, strict=True):
            hard[tile.slices] = image
        xs, ys = seam_lines(plan.grid)
        ok = [reads_as(out[m], s.colour) for m, s in zip(masks, scene.shapes, strict=True)]
        ok.append(reads_as(out[background], scene.background.colour))
        kept.append(all(ok))
        seams.append(seam_score(out, xs, ys))
        hard_seams.append(seam_score(hard, [s for s, _ in plan.grid.columns[1:]], [s for s, _ in plan.grid.rows[1:]]))
        lines.append(
            f"  seed +{k}: " + ", ".join(f"{s.colour} {s.shape.value} {read_colour(out[m])}" for m, s in zip(masks, scene.shapes, strict=True))
            + f", background {read_colour(out[background])}; seam {seams[-1]:.2f} (pasted without blend {hard_seams[-1]:.2f})"
        )
    report = f"shapes kept {rate(kept)}; seam scores {', '.join(f'{s:.2f}' for s in seams)}\n" + "\n".join(lines)
    print(report)
    assert max(seams) <= MAX_SEAM, report
    meaning(sum(kept), report)

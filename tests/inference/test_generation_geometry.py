"""One owner for the geometry (issue 11): the planner decides, the engine executes.

For SD 1.x and SDXL planning facts (the real families' native sizes and ranges; tiny
models of each family do the denoising) and several document and mask sizes: the size
the UNet denoises is the planner's generation size, the engine returns exactly that
size, and the result is resampled at most once on its way into the document (by the
placement, from generation size to the planned area; not at all when they are equal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.model.layers import Role
from sfumato.canvas.render.composite import flatten
from sfumato.planner import placement
from sfumato.planner.families import FAMILIES
from sfumato.planner.plan import Plan, plan
from sfumato.planner.recipe import GenerationSettings

CASES = [
    # (document width, height, mask box or None)
    (800, 600, None),  # txt2img/img2img of the whole canvas
    (3000, 2000, (1500, 900, 1560, 960)),  # a 60 px inpaint on a big canvas
    (800, 600, (100, 100, 300, 260)),
    (640, 640, (0, 0, 40, 40)),  # at a corner
]


def _doc(width: int, height: int, box: tuple[int, int, int, int] | None):  # noqa: ANN202
    paint = layer("paint", gradient(height, width)[..., :4])
    if box is None:
        return document(width, height, paint)
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width, 4), np.uint8)
    mask[y0:y1, x0:x1] = rgba(y1 - y0, x1 - x0, (255, 255, 255))
    return document(width, height, layer("mask", mask, Role.INPAINT_MASK), paint)


def _run(engine: Any, the_plan: Plan) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Run the plan's request; the (width, height) in pixels of every UNet call."""
    seen: list[tuple[int, int]] = []
    model = engine.cache.get(the_plan.request.model)  # the same LoadedModel the run uses

    def record(_module, args, kwargs):  # noqa: ANN001, ANN202
        sample = args[0] if args else kwargs["sample"]
        seen.append((int(sample.shape[-1]) * model.vae_scale, int(sample.shape[-2]) * model.vae_scale))

    handle = model.pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        result = engine.run(the_plan.request, lambda _event: None)
    finally:
        handle.remove()
    assert result.ok, result.error
    return result.images[0], seen


@pytest.mark.parametrize(
    ("family", "width", "height", "box"),
    # SDXL runs at 1024² scale on the CPU (tiny UNet, but the VAE works on every pixel,
    # ~15 s a run): its case is the next test, the 60 px mask on 3000×2000
    [("sd15", *case) for case in CASES],
)
def test_the_unet_sees_the_planned_size_and_the_result_is_resampled_at_most_once(
    shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str, width: int, height: int,
    box: tuple[int, int, int, int] | None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny_sd15 if family == "sd15" else tiny_sdxl
    doc = _doc(width, height, box)
    settings = GenerationSettings(prompt="a fox", model=str(model), steps=1, strength=0.6, seed=3)
    the_plan = plan(doc, settings, family=FAMILIES[family])
    gen = (the_plan.size.width, the_plan.size.height)
    assert (the_plan.request.width, the_plan.request.height) == gen

    image, seen = _run(shared_engine, the_plan)
    assert seen and set(seen) == {gen}  # every UNet call denoised the planned size
    assert image.shape[:2] == (gen[1], gen[0])  # the engine resampled nothing

    resamples: list[tuple[int, int]] = []
    real = placement.resize_image

    def counting(array, size):  # noqa: ANN001, ANN202
        if (array.shape[1], array.shape[0]) != (size.width, size.height):
            resamples.append((size.width, size.height))
        return real(array, size)

    monkeypatch.setattr(placement, "resize_image", counting)
    placed = placement.place_result(doc, the_plan, image)
    area = the_plan.area
    assert resamples == ([] if (area.w, area.h) == gen else [(area.w, area.h)])
    assert placed.document_bounds().intersect(area) == placed.document_bounds()


def test_an_sdxl_inpaint_sees_the_context_the_planner_chose(shared_engine: Any, tiny_sdxl: Path) -> None:
    """The 3000×2000 / 60 px case of the issue: the planner picks an area around the mask;
    the model now denoises that whole area at the planned size (before, the engine cropped
    again at SDXL's *minimum* side and upscaled the crop, seeing less context)."""
    doc = _doc(3000, 2000, (1500, 900, 1560, 960))
    settings = GenerationSettings(prompt="a fox", model=str(tiny_sdxl), steps=1, seed=3)
    the_plan = plan(doc, settings, family=FAMILIES["sdxl"])
    assert the_plan.area.w >= 1024 and the_plan.area.h >= 1024  # context around a 60 px mask
    image, seen = _run(shared_engine, the_plan)
    gen = (the_plan.size.width, the_plan.size.height)
    assert set(seen) == {gen}
    assert image.shape[:2] == (gen[1], gen[0])


def test_pixels_outside_the_mask_keep_their_bytes_through_plan_engine_and_placement(
    shared_engine: Any, tiny_sd15: Path
) -> None:
    """The promise the engine's paste-back used to keep, now kept once by the placement:
    a 1000×700 document, a soft-edged 30 px mask near a corner."""
    w, h = 1000, 700
    paint = layer("paint", gradient(h, w)[..., :4])
    mask = np.zeros((h, w, 4), np.uint8)
    mask[600:630, 900:930] = 255
    mask[598:600, 900:930, 3] = 100  # a soft edge
    doc = document(w, h, layer("mask", mask, Role.INPAINT_MASK), paint)
    before = flatten(doc)
    settings = GenerationSettings(prompt="a fox", model=str(tiny_sd15), steps=2, seed=5)
    the_plan = plan(doc, settings, family=FAMILIES["sd15"])
    assert the_plan.area.w * the_plan.area.h < w * h / 2  # the area around the mask, not the canvas
    image, _ = _run(shared_engine, the_plan)
    placement.place_result(doc, the_plan, image)
    after = flatten(doc)
    outside = mask[..., 3] == 0
    assert np.array_equal(after[outside], before[outside])
    inside = mask[..., 3] == 255
    assert not np.array_equal(after[inside], before[inside])

"""Regions from region layers: coverage, cutting, background, prompts, dropping."""

from __future__ import annotations

import numpy as np
import pytest
from plandocs import document, layer, rgba
from sfumato.canvas import editing
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import Role
from sfumato.planner.families import FamilyInfo
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.regions import plan_regions

AREA = Rect(0, 0, 100, 100)


def region(name: str, h: int, w: int, x: int = 0, y: int = 0, prompt: str = "", alpha: int = 255, **kw: object):
    return layer(name, rgba(h, w, alpha=alpha), role=Role.REGION, x=x, y=y, prompt=prompt, **kw)


def test_upper_regions_cut_lower_ones() -> None:
    top = region("top", 100, 60, prompt="a cat")
    bottom = region("bottom", 100, 100, prompt="a dog")
    regions, _ = plan_regions(document(100, 100, top, bottom), AREA, "garden", "")
    assert [r.layer_name for r in regions] == ["top", "bottom"]
    assert regions[0].mask[:, :60].min() == 1.0
    assert regions[1].mask[:, :60].max() == 0.0  # cut away by the upper region
    assert regions[1].mask[:, 60:].min() == 1.0
    total = sum(r.mask for r in regions)
    assert total.max() <= 1.0 + 1e-6


def test_soft_overlap_is_shared_not_double_counted() -> None:
    top = region("top", 100, 100, prompt="fog", alpha=128)
    bottom = region("bottom", 100, 100, prompt="sea")
    regions, _ = plan_regions(document(100, 100, top, bottom), AREA, "", "")
    assert np.allclose(regions[0].mask + regions[1].mask, 1.0, atol=1e-6)


def test_background_region_takes_the_rest_with_the_global_prompt() -> None:
    left = region("left", 100, 40, prompt="a cat")
    regions, _ = plan_regions(document(100, 100, left), AREA, "garden", "ugly")
    assert [r.layer_name for r in regions] == ["left", None]
    bg = regions[-1]
    assert bg.prompt == "garden" and bg.negative == "ugly"
    assert np.allclose(bg.mask, 1.0 - regions[0].mask)


def test_no_background_when_regions_cover_95_percent() -> None:
    most = region("most", 100, 97, prompt="a cat")
    regions, _ = plan_regions(document(100, 100, most), AREA, "garden", "")
    assert [r.layer_name for r in regions] == ["most"]


def test_global_prompt_is_appended_to_each_region() -> None:
    r = region("r", 100, 50, prompt="a cat", negative="dogs")
    regions, _ = plan_regions(document(100, 100, r), AREA, "oil painting", "blurry")
    assert regions[0].prompt == "a cat, oil painting"
    assert regions[0].negative == "dogs, blurry"


def test_negligible_and_hidden_regions_are_dropped() -> None:
    speck = region("speck", 2, 2, prompt="a bird")  # 0.04 % of the area
    hidden = region("hidden", 100, 100, prompt="a fish", visible=False)
    outside = region("outside", 50, 50, x=300, y=300, prompt="a tree")
    real = region("real", 100, 50, prompt="a cat")
    regions, notes = plan_regions(document(400, 400, speck, hidden, outside, real), AREA, "g", "")
    assert [r.layer_name for r in regions] == ["real", None]
    assert any("speck" in n for n in notes) and any("outside" in n for n in notes)


def test_regions_are_cropped_to_the_area_and_reach_the_request() -> None:
    r = region("right", 64, 32, x=32, prompt="a cat")
    doc = document(64, 64, r)
    p = plan(doc, GenerationSettings(prompt="garden", model="m"), family=FamilyInfo.for_native("sd15", 64))
    assert len(p.request.regions) == 2
    cat, bg = p.request.regions
    assert cat.prompt == "a cat, garden" and bg.prompt == "garden"
    assert cat.mask.shape == (p.request.height, p.request.width)
    assert cat.mask[:, :32].max() == 0.0 and cat.mask[:, 32:].min() == 1.0


@pytest.mark.parametrize("global_prompt", [""])
def test_uncovered_rest_without_a_global_prompt_is_noted(global_prompt: str) -> None:
    r = region("r", 100, 50, prompt="a cat")
    regions, notes = plan_regions(document(100, 100, r), AREA, global_prompt, "")
    assert [x.layer_name for x in regions] == ["r"]
    assert notes


def test_the_document_can_keep_its_prompt_out_of_the_regions(tmp_path) -> None:  # noqa: ANN001
    """Recipe.regions_include_prompt=False: a region generates from its own texts only,
    the background keeps the document's; the switch is saved in the .ora and reaches the
    plan from the recipe."""
    from sfumato.canvas.files.ora import load_ora, save_ora
    from sfumato.planner.recipe import settings_from_recipe

    r = region("right", 64, 32, x=32, prompt="a green triangle", negative="blur")
    doc = document(64, 64, r)
    editing.set_recipe(doc, prompt="a blue background", negative="text", regions_include_prompt=False)
    save_ora(doc, tmp_path / "doc.ora")
    back = load_ora(tmp_path / "doc.ora")
    assert back.recipe.regions_include_prompt is False
    settings = settings_from_recipe(back.recipe, model="m", seed=1)
    assert settings.regions_include_prompt is False
    p = plan(back, settings, family=FamilyInfo.for_native("sd15", 64))
    triangle, background = p.request.regions
    assert (triangle.prompt, triangle.negative) == ("a green triangle", "blur")
    assert (background.prompt, background.negative) == ("a blue background", "text")
    # The default (no attribute written) still appends.
    assert settings_from_recipe(document(8, 8).recipe, model="m", seed=1).regions_include_prompt is True

"""The document's fill (what an inpaint or an Expand starts from) travels in the recipe:
saved as ``sfumato:fill``, read back strictly, and turned into the planner's setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from orazip import png_bytes, solid, write_ora_zip
from sfumato.canvas.files.file_errors import BadAttributeError
from sfumato.canvas.files.ora import SFUMATO_NS, load_ora, save_ora
from sfumato.canvas.model.document import Document, Recipe
from sfumato.planner.errors import PlanError
from sfumato.planner.recipe import recipe_from_settings, settings_from_recipe
from sfumato.vocabulary.kinds import FillMode


@pytest.mark.parametrize("fill", [f.value for f in FillMode])
def test_every_fill_round_trips_through_openraster_and_the_settings(tmp_path: Path, fill: str) -> None:
    doc = Document(8, 8)
    doc.recipe = Recipe(prompt="a fox", fill=fill)
    save_ora(doc, tmp_path / "f.ora")
    recipe = load_ora(tmp_path / "f.ora").recipe
    assert recipe.fill == fill
    settings = settings_from_recipe(recipe, model="m", seed=1)
    assert settings.fill is FillMode(fill)
    assert recipe_from_settings(settings).fill == (None if fill == "keep" else fill)  # the default stays unset


def test_a_hand_written_fill_is_read_in_any_case_and_a_wrong_one_is_named(tmp_path: Path) -> None:
    layer = {"a.png": png_bytes(solid(2, 2, (0, 0, 0, 255)))}
    xml = f'<image w="4" h="4" xmlns:sfumato="{SFUMATO_NS}" sfumato:fill=" Telea"><stack><layer src="a.png"/></stack></image>'
    assert load_ora(write_ora_zip(tmp_path / "a.ora", xml, layer)).recipe.fill == "telea"
    bad = xml.replace(" Telea", "inpaint-anything")
    with pytest.raises(BadAttributeError, match="sfumato:fill='inpaint-anything'.*telea"):
        load_ora(write_ora_zip(tmp_path / "b.ora", bad, layer))


def test_the_setting_overrides_the_recipe_and_a_wrong_name_is_a_plan_error() -> None:
    assert settings_from_recipe(Recipe(fill="edge"), model="m", seed=1, fill=FillMode.BLUR).fill is FillMode.BLUR
    with pytest.raises(PlanError, match="unknown fill 'smudge'"):
        settings_from_recipe(Recipe(fill="smudge"), model="m", seed=1)

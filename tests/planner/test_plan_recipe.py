"""Recipe + overrides → settings."""

from __future__ import annotations

import random

import pytest
from sfumato.canvas.model.document import Recipe
from sfumato.inference.request import Sampler
from sfumato.planner.errors import PlanError
from sfumato.planner.recipe import GenerationSettings, recipe_from_settings, settings_from_recipe
from sfumato.vocabulary.kinds import ControlKind


def test_recipe_values_are_used_and_flags_override() -> None:
    recipe = Recipe(prompt="a cat", negative="dog", model="m.safetensors", seed=5, steps=30,
                    cfg=6.0, strength=0.4, sampler="euler_a")
    s = settings_from_recipe(recipe, steps=10, sampler="DPM++ 2M Karras", seed=None)
    assert (s.prompt, s.negative, s.model, s.seed, s.steps, s.cfg, s.strength) == (
        "a cat", "dog", "m.safetensors", 5, 10, 6.0, 0.4
    )
    assert s.sampler is Sampler.DPMPP_2M_KARRAS


def test_defaults_and_a_random_seed_when_unset() -> None:
    s = settings_from_recipe(Recipe(), rng=random.Random(1))
    assert (s.steps, s.cfg, s.strength, s.sampler, s.batch) == (20, 7.0, 1.0, Sampler.DEFAULT, 1)
    assert s.seed == settings_from_recipe(Recipe(), rng=random.Random(1)).seed


@pytest.mark.parametrize(("field", "value"), [("strength", 1.5), ("steps", 0), ("cfg", -1.0), ("batch", 0)])
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(PlanError, match=field):
        settings_from_recipe(Recipe(seed=1), **{field: value})


def test_unknown_sampler_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match="unknown sampler"):
        settings_from_recipe(Recipe(seed=1, sampler="warp drive"))


def test_settings_are_frozen_and_hashable() -> None:
    s = GenerationSettings(model="m", control_models={ControlKind.SCRIBBLE: "/cn"})
    assert hash(s) == hash(GenerationSettings(model="m", control_models={ControlKind.SCRIBBLE: "/cn"}))
    assert s.control_model_map == {ControlKind.SCRIBBLE: "/cn"}


def test_round_trip_through_the_recipe() -> None:
    s = GenerationSettings(prompt="p", negative="n", model="m", seed=9, steps=12, cfg=4.5,
                           strength=0.3, sampler=Sampler.DDIM)
    assert settings_from_recipe(recipe_from_settings(s)) == s
    plain = s.replace(regions_include_prompt=False)  # regions' prompts without the document's
    assert settings_from_recipe(recipe_from_settings(plain)) == plain

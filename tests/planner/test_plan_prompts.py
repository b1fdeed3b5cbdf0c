"""A plan's prompts: LoRA tags become the request's LoRAs, wildcards resolve with the seed,
and the record keeps the resolved prompt with its tags (planner/prompts.py)."""

from __future__ import annotations

import pytest
from plandocs import document, layer, rgba
from sfumato.canvas.files.parameters import format_parameters, parse_parameters
from sfumato.canvas.files.recipe_parameters import recipe_from_parameters
from sfumato.canvas.model.layers import Role
from sfumato.inference.catalog import ModelEntry, Origin, WeightsKind
from sfumato.inference.request import LoraSpec
from sfumato.planner.errors import PlanError
from sfumato.planner.families import FamilyInfo
from sfumato.planner.plan import Plan, plan
from sfumato.planner.recipe import GenerationSettings, settings_from_recipe
from sfumato.planner.record import generation_record

FAMILY = FamilyInfo.for_native("sd15", 64)
TINY = "/loras/tiny.safetensors"


def lora(path: str, family: str | None = "sd15", problem: str | None = None) -> ModelEntry:
    return ModelEntry(WeightsKind.LORA, path, path.rsplit("/", 1)[-1], family, Origin.CONFIGURED, problem=problem)


ENTRIES = [lora(TINY), lora("/loras/Grain.safetensors", None), lora("/xl/bigstyle.safetensors", "sdxl")]
LISTS = {"color": ["red", "green", "blue"]}


def make(prompt: str, negative: str = "", seed: int = 1, doc=None, **kw) -> Plan:  # type: ignore[no-untyped-def]
    settings = GenerationSettings(prompt=prompt, negative=negative, model="m", seed=seed)
    return plan(
        doc or document(64, 64), settings, family=FAMILY, loras=lambda: ENTRIES, wildcards=LISTS, **kw
    )


def test_lora_tag_becomes_a_lora_spec_and_leaves_the_prompt() -> None:
    p = make("a cat, <lora:tiny:0.5>, oil paint")
    assert p.request.loras == (LoraSpec(TINY, 0.5),)
    assert p.request.prompt == "a cat, oil paint"
    assert p.notes == ()


def test_tags_in_negative_and_unknown_family_loras_count_too() -> None:
    p = make("a cat <lora:tiny>", negative="blurry, <lora:grain:-0.5>")
    assert p.request.loras == (LoraSpec(TINY, 1.0), LoraSpec("/loras/Grain.safetensors", -0.5))
    assert (p.request.prompt, p.request.negative) == ("a cat", "blurry")


def test_a_missing_lora_is_a_plan_error_naming_it() -> None:
    with pytest.raises(PlanError, match=r"no LoRA named 'filmgrain'.*filmgrain\.safetensors"):
        make("a cat, <lora:filmgrain:0.8>")


def test_a_lora_of_another_family_is_refused_with_the_reason() -> None:
    with pytest.raises(PlanError, match=r"'bigstyle'.*sdxl"):
        make("<lora:bigstyle>, a cat")


def test_an_edit_model_takes_its_base_models_loras() -> None:
    """FLUX.1 Kontext is FLUX.1's transformer with the same keys: a FLUX LoRA reads as
    ``flux`` and fits it; an SDXL LoRA still does not."""
    kontext = FamilyInfo.for_native("flux-kontext", 64, 16)
    entries = [lora("/loras/inkwash.safetensors", "flux"), lora("/xl/bigstyle.safetensors", "sdxl")]
    settings = GenerationSettings(prompt="make it night <lora:inkwash:0.6>", model="m", seed=1)
    p = plan(document(64, 64), settings, family=kontext, loras=lambda: entries)
    assert p.request.loras == (LoraSpec("/loras/inkwash.safetensors", 0.6),)
    with pytest.raises(PlanError, match=r"'bigstyle'.*sdxl.*made for flux"):
        plan(document(64, 64), settings.replace(prompt="<lora:bigstyle>"), family=kontext, loras=lambda: entries)


def test_a_malformed_tag_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="<lora:tiny:lots>"):
        make("a cat, <lora:tiny:lots>")


def test_a_separate_text_encoder_weight_travels_in_the_spec() -> None:
    """A1111's order: <lora:NAME:te:unet>."""
    p = make("a cat, <lora:tiny:0.2:0.7>")
    assert p.request.loras == (LoraSpec(TINY, 0.7, 0.2),)
    assert p.request.summary()["loras"][0]["text_encoder_weight"] == 0.2
    assert make("a cat, <lora:tiny:0.7>").request.loras == (LoraSpec(TINY, 0.7),)  # one weight: none stored


def test_no_tags_means_no_lookup() -> None:
    def fail() -> list[ModelEntry]:
        raise AssertionError("looked up LoRAs without a tag")

    settings = GenerationSettings(prompt="a cat", model="m", seed=1)
    p = plan(document(64, 64), settings, family=FAMILY, loras=fail, wildcards=fail)
    assert p.request.loras == () and p.request.prompt == "a cat"


def test_wildcards_resolve_with_the_seed_and_the_record_keeps_tags() -> None:
    prompts = {make("a __color__ {house|boat}, <lora:tiny:0.5>", seed=s).request.prompt for s in range(40)}
    assert len(prompts) == 6  # three colours × two things, all reachable
    first = make("a __color__ {house|boat}, <lora:tiny:0.5>", seed=3)
    again = make("a __color__ {house|boat}, <lora:tiny:0.5>", seed=3)
    assert first.request == again.request
    record = generation_record(first)
    assert record["prompt"] == first.request.prompt + ", <lora:tiny:0.5>"
    assert "{" not in record["prompt"] and "__" not in record["prompt"]
    assert record["loras"] == [{"source": TINY, "weight": 0.5}]


def test_a_missing_wildcard_list_is_a_plan_error_naming_it() -> None:
    with pytest.raises(PlanError, match="'weather'"):
        make("a __weather__ day")


def test_escaped_braces_reach_the_model_plain_and_stay_escaped_in_the_record() -> None:
    p = make(r"a sign saying \{hello\}")
    assert p.request.prompt == "a sign saying {hello}"
    assert generation_record(p)["prompt"] == r"a sign saying \{hello\}"


def test_regions_get_their_own_tags_removed_and_resolved() -> None:
    region = layer("r", rgba(64, 32), role=Role.REGION, prompt="a {cat|dog} <lora:grain:0.3>")
    doc = document(64, 64, region)
    p = make("garden, <lora:tiny:0.5>", doc=doc, seed=2)
    own = p.request.regions[0].prompt
    assert own in ("a cat, garden", "a dog, garden")
    assert p.request.regions[1].prompt == "garden"  # the background
    assert p.request.loras == (LoraSpec(TINY, 0.5), LoraSpec("/loras/Grain.safetensors", 0.3))
    recorded = generation_record(p)["regions"]
    assert recorded[0]["prompt"] == own.replace(", garden", " <lora:grain:0.3>, garden, <lora:tiny:0.5>")
    assert recorded[1]["prompt"] == "garden, <lora:tiny:0.5>"


def test_parameters_round_trip_reproduces_the_plan() -> None:
    """A re-run of a saved picture's parameters gives the same prompt and LoRAs."""
    first = make("a __color__ {house|boat}, <lora:tiny:0.5>", negative="blurry <lora:grain:-1>", seed=11)
    text = format_parameters(generation_record(first))
    assert "<lora:tiny:0.5>" in text
    recipe = recipe_from_parameters(parse_parameters(text))
    settings = settings_from_recipe(recipe, model="m")
    again = plan(document(64, 64), settings, family=FAMILY, loras=lambda: ENTRIES, wildcards={})
    assert again.request == first.request
    assert generation_record(again)["prompt"] == generation_record(first)["prompt"]


def test_a_fast_lora_tag_brings_its_scheduler_settings(tmp_path) -> None:  # noqa: ANN001
    """Lightning through a tag needs its trailing timestep spacing, as its live preset has;
    an ordinary LoRA or a weight of 0 leaves the scheduler alone."""
    from sfumato.canvas.model.document import Document
    from sfumato.inference.catalog import ModelEntry, Origin
    from sfumato.inference.detect import WeightsKind
    from sfumato.planner.families import FamilyInfo
    from sfumato.planner.plan import plan
    from sfumato.planner.recipe import GenerationSettings

    def entry(name: str) -> ModelEntry:
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(b"")
        return ModelEntry(WeightsKind.LORA, str(path), name, "sdxl", Origin.CONFIGURED)

    installed = [entry("sdxl_lightning_4step_lora"), entry("watercolour")]
    sdxl = FamilyInfo.for_native("sdxl", 1024)

    def planned(prompt: str):  # noqa: ANN202
        settings = GenerationSettings(prompt=prompt, model="m.safetensors", model_family="sdxl", seed=1)
        return plan(Document(1024, 1024), settings, family=sdxl, loras=lambda: installed)

    fast = planned("a cat <lora:sdxl_lightning_4step_lora:1>")
    assert fast.request.scheduler_tweaks.timestep_spacing == "trailing"
    assert any("fast LoRA" in note for note in fast.notes)
    assert fast.request.summary()["scheduler_tweaks"]  # the record says so
    assert planned("a cat <lora:watercolour:0.8>").request.scheduler_tweaks.empty
    assert planned("a cat <lora:sdxl_lightning_4step_lora:0>").request.scheduler_tweaks.empty
    assert planned("a cat").request.scheduler_tweaks.empty

"""Prompts as other tools write them survive the trip: an A1111 PNG's ``parameters``
with weights, ``BREAK``, escapes, a LoRA tag and a wildcard becomes the same request as
the text typed in; the record Sfumato writes reads back to the same prompt; and the
built-in model renders the imported picture's recipe to the byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sfumato.canvas.files.image_parameters import read_image_parameters
from sfumato.canvas.files.imageio import save_png
from sfumato.canvas.files.parameters import format_parameters, parse_parameters
from sfumato.canvas.files.recipe_parameters import recipe_from_parameters
from sfumato.canvas.model.document import Document
from sfumato.inference.catalog import ModelEntry, Origin
from sfumato.inference.detect import WeightsKind
from sfumato.planner.plan import plan
from sfumato.planner.recipe import settings_from_recipe
from sfumato.planner.record import generation_record

PROMPT = (
    "masterpiece, a (red:1.3) circle, [[blurry]], ((sharp)), \\(literal brackets\\)\n"
    "BREAK on a {blue|dark blue} background <lora:filmgrain:0.6>"
)
NEGATIVE = "(worst quality:1.4), lowres, embedding:easynegative, <lora:filmgrain:0.6>"
A1111 = (
    f"{PROMPT}\nNegative prompt: {NEGATIVE}\n"
    "Steps: 4, Sampler: DPM++ 2M Karras, Schedule type: Karras, CFG scale: 5, Seed: 1234, "
    "Size: 64x64, Model: builtin, Version: v1.10.1"
)


def _lora(tmp_path: Path) -> ModelEntry:
    path = tmp_path / "filmgrain.safetensors"
    path.write_bytes(b"")  # the planner only finds it; nothing loads it here
    return ModelEntry(WeightsKind.LORA, str(path), "filmgrain", "sd15", Origin.CONFIGURED)


def _plan(prompt: str, negative: str, lora: ModelEntry, **overrides: object):  # noqa: ANN202
    from sfumato.canvas.model.document import Recipe

    recipe = Recipe(prompt=prompt, negative=negative, model="builtin", seed=1234, steps=4, cfg=5.0,
                    sampler="dpmpp_2m_karras")
    settings = settings_from_recipe(recipe, **overrides)
    return plan(Document(64, 64), settings, loras=lambda: [lora])


def test_an_a1111_png_plans_the_same_request_as_the_typed_prompt(tmp_path: Path) -> None:
    lora = _lora(tmp_path)
    png = tmp_path / "a1111.png"
    save_png(np.zeros((64, 64, 4), np.uint8), png, A1111)
    params = read_image_parameters(png)
    assert params is not None
    recipe = recipe_from_parameters(params, source=png)
    assert recipe.prompt == PROMPT and recipe.negative == NEGATIVE
    imported = plan(Document(64, 64), settings_from_recipe(recipe), loras=lambda: [lora])
    typed = _plan(PROMPT, NEGATIVE, lora)
    assert imported.request == typed.request
    request = typed.request
    assert "<lora" not in request.prompt and "<lora" not in request.negative
    assert [(Path(s.source).name, s.weight) for s in request.loras] == [("filmgrain.safetensors", 0.6)]
    assert "(red:1.3)" in request.prompt and "BREAK" in request.prompt  # the engine reads them
    assert "{" not in request.prompt  # the wildcard is resolved, with the seed


def test_the_record_reads_back_to_the_same_resolved_prompt(tmp_path: Path) -> None:
    lora = _lora(tmp_path)
    planned = _plan(PROMPT, NEGATIVE, lora)
    text = format_parameters(generation_record(planned))
    again = recipe_from_parameters(parse_parameters(text))
    # The wildcard is stored resolved, tags and weights as written: a re-run is the same.
    assert "{" not in again.prompt and "<lora:filmgrain:0.6>" in again.prompt
    assert "(red:1.3)" in again.prompt and "\\(literal brackets\\)" in again.prompt
    assert again.negative == NEGATIVE  # an embedding's name travels as the text it is
    rerun = _plan(again.prompt, again.negative, lora)
    assert rerun.request == planned.request


@pytest.mark.semantic
def test_the_imported_recipe_renders_the_same_picture(tmp_path: Path) -> None:
    """No LoRA here (the file above is empty): weights, BREAK and escapes only."""
    from sfumato.inference.engine import Engine

    prompt = "a (red:1.3) circle BREAK on a [blue] background, \\(x\\)"
    png = tmp_path / "a1111.png"
    save_png(np.zeros((64, 64, 4), np.uint8), png, A1111.replace(PROMPT, prompt).replace(NEGATIVE, "lowres"))
    params = read_image_parameters(png)
    assert params is not None
    recipe = recipe_from_parameters(params)
    engine = Engine(device="cpu")
    imported = engine.generate(plan(Document(64, 64), settings_from_recipe(recipe)).request)
    typed = engine.generate(_plan(prompt, "lowres", _lora(tmp_path)).request)
    assert np.array_equal(imported[0], typed[0])

"""Styles: files, the user's over the built-ins, applying one, the recipe and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.model.document import Document, Recipe
from sfumato.planner.recipe import GenerationSettings, recipe_from_settings, settings_from_recipe
from sfumato.planner.styles import (
    LiveStyle,
    Style,
    StyleError,
    StyleLora,
    apply_live_style,
    apply_style,
    load_style_file,
    load_styles,
    recipe_style,
    record_style,
    save_style,
)
from sfumato.vocabulary.kinds import Sampler

WATERCOLOUR = Style(
    name="Watercolour",
    model="builtin",
    sampler=Sampler.EULER_A,
    steps=12,
    cfg=5.5,
    prompt="{prompt}, watercolour",
    negative="photo",
    loras=(StyleLora("wash", 0.8),),
    live=LiveStyle(sampler=Sampler.LCM, steps=4, cfg=1.0, strength=0.5),
)


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(folder))
    return folder


def test_save_and_load_round_trip(config: Path) -> None:
    path = save_style(WATERCOLOUR)
    assert path == config / "styles" / "watercolour.json"
    assert load_style_file(path) == WATERCOLOUR
    assert load_styles().find("watercolour") == WATERCOLOUR  # any case


def test_toml_is_read(config: Path) -> None:
    folder = config / "styles"
    folder.mkdir(parents=True)
    (folder / "ink.toml").write_text(
        'name = "Ink"\nsampler = "DPM++ 2M Karras"\nsteps = 9\nprompt = "ink drawing of {prompt}"\n'
        'loras = [{name = "ink", weight = 0.5}]\n[live]\nsteps = 3\nstrength = 0.4\n'
    )
    style = load_styles().find("Ink")
    assert style.sampler is Sampler.DPMPP_2M_KARRAS and style.steps == 9
    assert style.loras == (StyleLora("ink", 0.5),) and style.live == LiveStyle(steps=3, strength=0.4)
    assert style.source == str(folder / "ink.toml")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.json", "{not json", "bad.json"),
    ("bad.toml", "name = ", "bad.toml"),
    ("noname.json", '{"steps": 4}', "'name'"),
    ("steps.json", '{"name": "x", "steps": "many"}', "'steps'"),
    ("sampler.json", '{"name": "x", "sampler": "warp"}', "'sampler'"),
    ("key.json", '{"name": "x", "colour": 1}', "unknown key 'colour'"),
    ("list.json", "[1, 2]", "list.json"),
    ("binary.json", "\udcff", "binary.json"),
])
def test_a_malformed_file_is_one_named_line(config: Path, name: str, text: str, message: str) -> None:
    folder = config / "styles"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(StyleError, match=message.replace("(", r"\(")) as caught:
        load_style_file(folder / name)
    assert "\n" not in str(caught.value) and name in str(caught.value)
    book = load_styles()  # never a crash: skipped, listed
    assert len(book.problems) == 1 and name in book.problems[0]
    assert "Built-in demo" in book.names()


def test_builtins_cover_the_fast_setups_and_a_user_style_overrides_one(config: Path) -> None:
    book = load_styles()
    assert {"Built-in demo", "Turbo", "Lightning", "LCM", "Hyper"} <= set(book.names())
    assert book.problems == ()
    assert book.find("Turbo").steps == 2 and book.find("Turbo").cfg == 0.0  # the Turbo preset's values
    assert book.find("Built-in demo").source == "built-in"
    save_style(Style(name="Turbo", steps=3))
    turbo = load_styles().find("Turbo")
    assert turbo.steps == 3 and turbo.source.endswith("turbo.json")
    with pytest.raises(StyleError, match="known styles: .*Built-in demo"):
        book.find("Nope")


def test_apply_style_to_settings() -> None:
    settings = GenerationSettings(prompt="a harbour", negative="blurry", model="other", steps=30, cfg=7.0)
    styled = apply_style(WATERCOLOUR, settings)
    assert styled.prompt == "a harbour, watercolour <lora:wash:0.8>"
    assert styled.negative == "blurry, photo"
    assert (styled.model, styled.sampler, styled.steps, styled.cfg) == ("builtin", Sampler.EULER_A, 12, 5.5)
    kept = apply_style(WATERCOLOUR, settings, keep={"steps", "model"})
    assert (kept.model, kept.steps, kept.cfg) == ("other", 30, 5.5)
    # A template without {prompt} follows the artist's prompt; unset values stay.
    plain = apply_style(Style(name="x", prompt="oil"), settings)
    assert plain.prompt == "a harbour, oil" and plain.steps == 30 and plain.model == "other"
    live = apply_live_style(WATERCOLOUR, settings)
    assert (live.sampler, live.steps, live.cfg, live.strength) == (Sampler.LCM, 4, 1.0, 0.5)
    assert live.prompt == styled.prompt


def test_recipe_keeps_the_style_through_a_file(tmp_path: Path, config: Path) -> None:
    path = save_style(WATERCOLOUR)
    doc = Document(32, 32, recipe=Recipe(prompt="a cat", seed=3))
    record_style(doc.recipe, load_styles().find("Watercolour"))
    save_ora(doc, tmp_path / "doc.ora")
    recipe = load_ora(tmp_path / "doc.ora").recipe
    assert recipe.style == "Watercolour" and recipe.prompt == "a cat"  # the artist's prompt
    path.unlink()  # the style is gone: the document's own copy is used
    assert recipe_style(recipe) == WATERCOLOUR
    # the stored values win over a style of that name edited since
    save_style(Style(name="Watercolour", steps=50))
    assert recipe_style(recipe) == WATERCOLOUR
    # the window's save-back keeps the style
    settings = settings_from_recipe(recipe)
    assert recipe_from_settings(settings, recipe).style_resolved == recipe.style_resolved


def test_a_named_style_without_values_is_looked_up_or_refused() -> None:
    assert recipe_style(Recipe()) is None
    assert recipe_style(Recipe(style="Turbo")) == load_styles().find("Turbo")
    with pytest.raises(StyleError, match="no style called 'Gone'"):
        recipe_style(Recipe(style="Gone"))


def test_broken_resolved_json_is_a_named_error(tmp_path: Path) -> None:
    from sfumato.canvas.files.file_errors import FileFormatError

    doc = Document(8, 8, recipe=Recipe(style="x"))
    save_ora(doc, tmp_path / "doc.ora")
    import zipfile

    with zipfile.ZipFile(tmp_path / "doc.ora") as z:
        files = {n: z.read(n) for n in z.namelist()}
    files["stack.xml"] = files["stack.xml"].replace(b'sfumato:style="x"', b'sfumato:style="x" sfumato:style-resolved="[1"')
    with zipfile.ZipFile(tmp_path / "bad.ora", "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(FileFormatError, match="style-resolved"):
        load_ora(tmp_path / "bad.ora")
    assert load_ora(tmp_path / "bad.ora", strict=False).recipe.style_resolved is None


# ----------------------------------------------------------------------------- the CLI
def test_styles_command_lists_them(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sfumato.cli import main

    save_style(WATERCOLOUR)
    assert main(["styles"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["STYLE", "SOURCE", "MODEL", "STEPS", "CFG", "SAMPLER"]
    assert any(line.split()[:2] == ["Watercolour", str(config / "styles" / "watercolour.json")]
               for line in out.splitlines())
    assert main(["styles", "--json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["Turbo"]["source"] == "built-in" and listed["Watercolour"]["steps"] == 12


def test_render_with_an_unknown_style_names_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sfumato.cli import main

    save_ora(Document(16, 16, recipe=Recipe(prompt="x", seed=1)), tmp_path / "doc.ora")
    code = main(["render", str(tmp_path / "doc.ora"), "-o", str(tmp_path / "out.png"), "--style", "Nope"])
    err = capsys.readouterr().err
    assert code == 1 and "no style called 'Nope'" in err and "Built-in demo" in err
    assert len(err.strip().splitlines()) == 1


def test_render_with_a_style_then_without_the_style_file(tmp_path: Path, config: Path) -> None:
    """The built-in model renders with a user style; the layered document keeps the style,
    and renders the same after the style file is deleted."""
    from PIL import Image
    from sfumato.canvas.files.image_parameters import read_png_parameters

    from sfumato.cli import main

    path = save_style(Style(name="Quick", model="builtin", steps=3, cfg=2.0, prompt="{prompt}, simple shapes"))
    save_ora(Document(64, 64, recipe=Recipe(prompt="a red circle", seed=5, steps=30)), tmp_path / "doc.ora")
    first = tmp_path / "first.png"
    assert main(["render", str(tmp_path / "doc.ora"), "-o", str(first), "--style", "Quick",
                 "--layered", str(tmp_path / "styled.ora"), "-q"]) == 0
    parameters = read_png_parameters(first) or {}
    assert (parameters["prompt"], parameters["steps"], parameters["cfg"], parameters["seed"]) == (
        "a red circle, simple shapes", 3, 2.0, 5)
    styled = load_ora(tmp_path / "styled.ora")
    assert styled.recipe.style == "Quick" and styled.recipe.prompt == "a red circle"

    path.unlink()
    second = tmp_path / "second.png"
    assert main(["render", str(tmp_path / "styled.ora"), "-o", str(second), "-q"]) == 0
    again = read_png_parameters(second) or {}
    keys = ("prompt", "negative", "steps", "cfg", "seed", "sampler", "model")
    assert {k: again.get(k) for k in keys} == {k: parameters.get(k) for k in keys}
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))


def test_built_in_styles_are_offered_only_when_their_setup_is_installed(tmp_path: Path) -> None:
    from sfumato.inference.catalog import ModelEntry, Origin
    from sfumato.inference.detect import WeightsKind
    from sfumato.planner.styles import installed_styles, load_styles

    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.json").write_text('{"name": "Mine", "loras": [{"name": "not-installed", "weight": 1}]}')
    book = load_styles(user_dir=user)
    bare = installed_styles(book, loras=[], models=[])
    assert set(bare.names()) == {"Built-in demo", "Mine"}  # user styles always; built-ins need their setup
    lora = tmp_path / "sdxl_lightning_4step_lora.safetensors"
    lora.write_bytes(b"")
    entry = ModelEntry(WeightsKind.LORA, str(lora), "sdxl_lightning_4step_lora", "sdxl", Origin.CONFIGURED)
    with_lightning = installed_styles(book, loras=[entry], models=["stabilityai/sdxl-turbo"])
    assert {"Lightning", "Turbo"} <= set(with_lightning.names())
    assert "LCM" not in with_lightning.names() and "Hyper" not in with_lightning.names()

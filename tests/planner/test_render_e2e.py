"""End to end: a hand-made .ora through ``sfumato render`` with tiny models.

The document has a paint layer, an inpaint mask, two regions and a scribble control; the
tiny SD 1.x model (64 px native) and a tiny ControlNet are diffusers folders built in the
test session (no network).
"""

from __future__ import annotations

from pathlib import Path

import diffusers  # noqa: F401 - required dependencies (pyproject.toml): missing is a failure
import numpy as np
import pytest
import torch  # noqa: F401
from PIL import Image
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.files.image_parameters import read_png_parameters
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.model.document import Recipe
from sfumato.canvas.model.layers import ControlSettings, Role
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.kinds import ControlKind

from sfumato.cli import main

W, H = 160, 128
MASK = (60, 40, 36, 30)  # x, y, w, h of the painted mask


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tinymodels import build_tiny_controlnet, build_tiny_sd15

    root = tmp_path_factory.mktemp("models")
    return build_tiny_sd15(root / "sd15"), build_tiny_controlnet(root / "cn-scribble", "sd15")


def make_document(path: Path) -> np.ndarray:
    """Write the test .ora; returns the mask's coverage (bool, document space)."""
    x, y, w, h = MASK
    mask_pixels = rgba(h, w, alpha=0)
    mask_pixels[2:-2, 2:-2, 3] = 255
    mask_pixels[0:2, :, 3] = 128  # a soft edge on top
    scribble = rgba(H, W, alpha=0)
    scribble[30:90, 70:74] = (0, 0, 0, 255)
    scribble[60:64, 40:120] = (0, 0, 0, 255)
    doc = document(
        W, H,
        layer("sketch", scribble, role=Role.CONTROL,
              control=ControlSettings(ControlKind.SCRIBBLE, strength=0.9, start=0.0, end=0.8)),
        layer("Mask", mask_pixels, role=Role.INPAINT_MASK, x=x, y=y),
        layer("sky", rgba(H // 2, W, alpha=255), role=Role.REGION, prompt="a blue sky"),
        layer("meadow", rgba(H, W, alpha=255), role=Role.REGION, prompt="a green meadow",
              negative="snow"),
        layer("paint", gradient(H, W)),
    )
    doc.recipe = Recipe(prompt="a landscape", negative="blurry", seed=11, steps=3, cfg=5.0,
                        strength=0.9, sampler="euler")
    save_ora(doc, path)
    coverage = np.zeros((H, W), bool)
    coverage[y : y + h, x : x + w] = mask_pixels[..., 3] > 0
    return coverage


def test_render_inpaints_with_regions_and_a_scribble(tmp_path: Path, models: tuple[Path, Path]) -> None:
    model, controlnet = models
    source = tmp_path / "in.ora"
    coverage = make_document(source)
    out, layered = tmp_path / "out.png", tmp_path / "out.ora"
    status = main([
        "render", str(source), "-o", str(out), "--model", str(model),
        "--controlnet", f"scribble={controlnet}", "--layered", str(layered), "--steps", "2", "-q",
    ])
    assert status == 0

    before = flatten(load_ora(source))
    after = np.asarray(Image.open(out).convert("RGBA"))
    assert after.shape == before.shape
    # every pixel outside the mask is byte-identical to the input's flatten
    assert np.array_equal(after[~coverage], before[~coverage])
    # and the inside changed
    assert not np.array_equal(after[coverage], before[coverage])

    # the PNG's parameters round-trip
    params = read_png_parameters(out)
    assert params is not None
    assert params["prompt"] == "a landscape" and params["negative"] == "blurry"
    assert (params["seed"], params["steps"], params["cfg"]) == (11, 2, 5.0)
    assert params["sampler"] == "euler"

    # the layered document re-opens with the new layer, its parameters and the same picture
    doc = load_ora(layered)
    generated = [lyr for lyr in doc.pixel_layers(Role.GENERATED)]
    assert len(generated) == 1
    gen = generated[0].generation
    assert gen is not None and gen["mode"] == "inpaint" and gen["seed"] == 11
    assert [r["prompt"] for r in gen["regions"]] == [
        "a blue sky, a landscape", "a green meadow, a landscape"
    ]
    assert gen["controls"][0]["kind"] == "scribble"
    assert np.array_equal(flatten(doc), after)
    assert {lyr.name for lyr in doc.pixel_layers()} >= {"paint", "Mask", "sky", "meadow", "sketch"}


def test_render_batch_writes_numbered_files(tmp_path: Path, models: tuple[Path, Path]) -> None:
    model, _ = models
    doc = document(64, 64, layer("paint", gradient(64, 64)))
    doc.recipe = Recipe(prompt="a cat", seed=5, steps=2, strength=0.5)
    source = tmp_path / "in.ora"
    save_ora(doc, source)
    status = main(["render", str(source), "-o", str(tmp_path / "cat.png"), "--model", str(model),
                   "--batch", "2", "-q"])
    assert status == 0
    seeds = [read_png_parameters(tmp_path / f"cat-{i}.png")["seed"] for i in (1, 2)]  # type: ignore[index]
    assert seeds == [5, 6]


def test_bad_input_is_one_line_and_non_zero(tmp_path: Path, models: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = models
    assert main(["render", str(tmp_path / "missing.ora"), "-o", str(tmp_path / "o.png"), "--model", str(model)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sfumato: error:") and "missing.ora" in err and "\n" not in err

    doc = document(64, 64, layer("Mask", rgba(8, 8, alpha=0), role=Role.INPAINT_MASK),
                   layer("paint", gradient(64, 64)))
    source = tmp_path / "empty-mask.ora"
    save_ora(doc, source)
    assert main(["render", str(source), "-o", str(tmp_path / "o.png"), "--model", str(model)]) == 1
    err = capsys.readouterr().err.strip()
    assert "'Mask' is empty" in err and "\n" not in err
    assert not (tmp_path / "o.png").exists()

    # an unknown control kind written by hand into stack.xml
    import zipfile

    save_ora(document(64, 64, layer("sk", rgba(8, 8), role=Role.CONTROL)), tmp_path / "ctl.ora")
    with zipfile.ZipFile(tmp_path / "ctl.ora") as zin, zipfile.ZipFile(tmp_path / "bad.ora", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "stack.xml":
                data = data.replace(b'sfumato:control="scribble"', b'sfumato:control="teleport"')
            zout.writestr(info, data)
    assert main(["render", str(tmp_path / "bad.ora"), "-o", str(tmp_path / "o.png"), "--model", str(model)]) == 1
    err = capsys.readouterr().err.strip()
    assert "unknown control kind 'teleport'" in err and "\n" not in err

    # a model that does not exist
    assert main(["render", str(tmp_path / "ctl.ora"), "-o", str(tmp_path / "o.png"),
                 "--model", str(tmp_path / "nope.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert "model not found" in err and "\n" not in err


def test_no_model_anywhere_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import sfumato.render_cli as render_cli

    monkeypatch.setattr(render_cli, "_builtin_installed", lambda: False)
    source = tmp_path / "in.ora"
    save_ora(document(64, 64), source)
    assert main(["render", str(source), "-o", str(tmp_path / "o.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--model PATH" in err and "\n" not in err


def test_models_lists_configured_models(tmp_path: Path, models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sfumato.vocabulary.config import Config, save_config

    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(tmp_path / "config"))
    model, controlnet = models
    save_config(Config(model_paths=(str(model), str(controlnet))))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if str(model) in line]
    assert lines and "sd15" in lines[0] and "checkpoint" in lines[0]
    assert any(str(controlnet) in line and "controlnet" in line for line in out.splitlines())


def test_model_by_catalog_name(tmp_path: Path, models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sfumato.vocabulary.config import Config, save_config

    from sfumato.render_cli import resolve_model

    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(tmp_path / "config"))
    model, _ = models
    save_config(Config(model_paths=(str(model),)))
    resolved = resolve_model(model.name, None)
    assert Path(resolved.source).resolve() == model.resolve() and resolved.family == "sd15"


def test_engine_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    broken = tmp_path / "broken-model"
    (broken / "unet").mkdir(parents=True)
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (broken / "unet" / "config.json").write_text(json.dumps({"sample_size": 8}))
    source = tmp_path / "in.ora"
    save_ora(document(64, 64), source)
    assert main(["render", str(source), "-o", str(tmp_path / "o.png"), "--model", str(broken), "--seed", "1", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sfumato: error:") and "\n" not in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("fill", [None, "edge"])
def test_render_expands_a_grown_canvas(tmp_path: Path, models: tuple[Path, Path], fill: str | None) -> None:
    """A picture whose canvas grew 32 px to the right renders as an Expand: the picture's
    pixels keep their bytes, the border is painted (no transparency), and the record says
    which infill it started from (Telea unless --fill chose another)."""
    from sfumato.canvas.edits.canvas_size import Anchor, resize_canvas_to

    model, _ = models
    doc = document(64, 64, layer("paint", gradient(64, 64)))
    resize_canvas_to(doc, 96, 64, Anchor.LEFT)
    doc.recipe = Recipe(prompt="a cat", seed=5, steps=2)
    source, out, layered = tmp_path / "in.ora", tmp_path / "out.png", tmp_path / "out.ora"
    save_ora(doc, source)
    extra = [] if fill is None else ["--fill", fill]
    assert main(["render", str(source), "-o", str(out), "--model", str(model), "--layered", str(layered), "-q",
                 *extra]) == 0  # fmt: skip
    after = np.asarray(Image.open(out).convert("RGBA"))
    assert after.shape == (64, 96, 4)
    assert np.array_equal(after[:, :64], gradient(64, 64))
    assert (after[..., 3] == 255).all()
    gen = next(iter(load_ora(layered).pixel_layers(Role.GENERATED))).generation
    assert gen is not None and gen["mode"] == "inpaint" and gen["inpaint"] == {"fill": fill or "telea"}

"""``sfumato render`` of an .ora with a reference layer: the tiny FLUX.2 Klein folder is
given the reference picture (its result differs from the same document without one, for
the same seed), and a family that takes no references stops with a sentence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.model.document import Recipe
from sfumato.canvas.model.layers import ReferenceSettings, Role
from sfumato.vocabulary.kinds import ReferenceKind
from tinyflow import tiny_flow_model

from sfumato.cli import main

W, H = 64, 64


def _klein(root: Path) -> Path:
    """The tiny Klein folder with a 64 px native size the planner can read."""
    folder = root / "klein"
    if not folder.exists():
        shutil.copytree(tiny_flow_model("flux2-klein"), folder)
        config_path = folder / "transformer" / "config.json"
        config = json.loads(config_path.read_text())
        config.setdefault("sample_size", 8)
        config_path.write_text(json.dumps(config))
    return folder


def _save(path: Path, *, reference: bool, visible: bool = True) -> None:
    picture = rgba(40, 56, (250, 20, 20))
    picture[10:30, 10:46] = (10, 10, 240, 255)
    layers = [layer("look", picture, role=Role.REFERENCE, x=4, y=8, visible=visible,
                    reference=ReferenceSettings(ReferenceKind.CONTENT))] if reference else []
    doc = document(W, H, *layers, layer("paint", gradient(H, W)))
    doc.recipe = Recipe(prompt="a red poster", seed=7, steps=2, cfg=1.0, strength=1.0, sampler="euler")
    save_ora(doc, path)


def _render(tmp_path: Path, name: str, model: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> np.ndarray:
    out = tmp_path / f"{name}.png"
    status = main(["render", str(tmp_path / f"{name}.ora"), "-o", str(out), "--model", str(model), "-q", *extra])
    assert status == 0, capsys.readouterr().err
    return np.asarray(Image.open(out).convert("RGB")).astype(np.int16)


def test_render_with_reference_layer_differs_from_without(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _klein(tmp_path)
    _save(tmp_path / "with.ora", reference=True)
    _save(tmp_path / "without.ora", reference=False)
    _save(tmp_path / "hidden.ora", reference=True, visible=False)
    layered = tmp_path / "layered.ora"
    with_ref = _render(tmp_path, "with", model, capsys, "--layered", str(layered))
    without = _render(tmp_path, "without", model, capsys)
    hidden = _render(tmp_path, "hidden", model, capsys)
    # the CPU run is deterministic: a hidden reference is no reference, byte for byte
    assert np.array_equal(hidden, without)
    # the reference's tokens reach the tiny transformer. Its random weights attend little
    # to them (measured: at most 1 level on a few % of the pixels, where another seed
    # moves pixels by up to 250 levels), so the test asks for a change, not a size.
    assert not np.array_equal(with_ref, without)
    # the record of the generated layer names the reference and its size on the multiple
    result = load_ora(layered)
    generated = [lyr for lyr in result.pixel_layers() if lyr.role is Role.GENERATED]
    assert len(generated) == 1 and generated[0].generation is not None
    (entry,) = generated[0].generation["references"]
    assert entry["layer"] == "look" and entry["kind"] == "content" and entry["regional"] is False
    assert entry["width"] % 16 == 0 and entry["height"] % 16 == 0
    assert [lyr.role for lyr in result.pixel_layers()].count(Role.REFERENCE) == 1


def test_render_with_a_family_that_takes_no_references_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "chroma"
    shutil.copytree(tiny_flow_model("chroma"), folder)
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config.setdefault("sample_size", 8)
    config_path.write_text(json.dumps(config))
    _save(tmp_path / "with.ora", reference=True)
    status = main(["render", str(tmp_path / "with.ora"), "-o", str(tmp_path / "x.png"), "--model", str(folder), "-q"])
    assert status != 0
    assert "take no reference pictures" in capsys.readouterr().err

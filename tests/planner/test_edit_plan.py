"""Planning an instruction edit: with an edit model (FLUX.1 Kontext, Qwen-Image-Edit) and a
painted canvas the plan is an edit — the visible canvas is the picture to edit, a mask or
selection becomes the request's inpaint mask and the result is placed through the paste
mask, so every pixel outside it keeps its bytes — and ``sfumato render`` runs it on the
tiny Kontext and Qwen-Image-Edit folders."""

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
from sfumato.canvas.model.layers import Role
from sfumato.canvas.render.composite import flatten
from sfumato.planner.families import FamilyInfo
from sfumato.planner.placement import place_result
from sfumato.planner.plan import Mode, detect_mode, model_edits, plan
from sfumato.planner.recipe import GenerationSettings
from tinyedit import tiny_edit_model

from sfumato.cli import main

KONTEXT = FamilyInfo.for_native("flux-kontext", 64, 16)
S = GenerationSettings(prompt="make it night", model="tiny", model_family="flux-kontext", seed=7, steps=2,
                       strength=0.6)  # fmt: skip


def test_edit_models_plan_edits_of_the_visible_canvas() -> None:
    assert model_edits("flux-kontext") and model_edits("qwenimage-edit") and model_edits("qwenimage-edit-plus")
    assert not model_edits("flux") and not model_edits("flux2") and not model_edits(None)
    doc = document(64, 64, layer("paint", gradient(64, 64)))
    p = plan(doc, S, family=KONTEXT)
    assert p.mode is Mode.EDIT and p.label == "Edit" and p.request.edit
    assert p.request.init is not None and p.request.init.strength == 1.0  # from noise, the picture its context
    assert np.array_equal(p.request.init.image, gradient(64, 64)[..., :3])
    assert p.request.inpaint is None and p.paste_mask is None
    assert p.request.summary()["mode"] == "edit"
    assert detect_mode(doc, 0.6, edits=True) is Mode.EDIT
    assert detect_mode(doc, 0.6) is Mode.IMG2IMG  # another model refines
    assert plan(document(64, 64), S, family=KONTEXT).mode is Mode.TXT2IMG  # nothing to edit


def test_an_edit_in_a_selection_leaves_every_pixel_outside_untouched() -> None:
    doc = document(200, 160, layer("paint", gradient(160, 200)))
    doc.selection = np.zeros((160, 200), np.float32)
    doc.selection[90:110, 100:130] = 1.0
    before = flatten(doc)
    p = plan(doc, S, family=KONTEXT)
    assert p.mode is Mode.EDIT and p.request.inpaint is not None and p.paste_mask is not None
    assert p.area.w < 200 or p.area.h < 160  # the selection's context area, not the canvas
    result = np.full((p.size.height, p.size.width, 3), (250, 0, 0), np.uint8)
    place_result(doc, p, result)
    after = flatten(doc)
    inside = np.zeros((160, 200), bool)
    inside[90:110, 100:130] = True
    assert np.array_equal(after[~inside], before[~inside])
    assert (after[100, 115, :3] == (250, 0, 0)).all()


def _sized(kind: str, root: Path) -> Path:
    """The tiny edit folder with a 64 px native size the planner can read."""
    folder = root / kind
    shutil.copytree(tiny_edit_model(kind), folder)
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config.setdefault("sample_size", 8)
    config_path.write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("kind", ["kontext", "qwenimage-edit"])
def test_render_an_edit_in_a_mask(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sfumato render`` edits a document in a mask: outside it, byte for byte the input."""
    model = _sized(kind, tmp_path)
    mask = layer("Mask", rgba(32, 32, alpha=255), role=Role.INPAINT_MASK, x=24, y=16)  # (a selection is not saved)
    doc = document(80, 64, mask, layer("paint", gradient(64, 80)))
    doc.recipe = Recipe(prompt="make it red", seed=5, steps=2, cfg=2.5, strength=1.0, sampler="euler")
    source, out = tmp_path / "in.ora", tmp_path / "out.png"
    save_ora(doc, source)
    status = main(["render", str(source), "-o", str(out), "--model", str(model), "-q"])
    assert status == 0, capsys.readouterr().err
    before = flatten(load_ora(source))
    after = np.asarray(Image.open(out).convert("RGBA"))
    inside = np.zeros((64, 80), bool)
    inside[16:48, 24:56] = True
    assert np.array_equal(after[~inside], before[~inside])
    assert not np.array_equal(after[inside], before[inside])

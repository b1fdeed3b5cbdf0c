"""``sfumato render`` with each transformer family's tiny folder: a document with a paint
layer, an inpaint mask, two regions and a scribble control layer.

Where the family can do it all, the render succeeds and every pixel outside the mask is
byte-identical to the input; where it cannot (no ControlNet class for the family, no
regional prompting), the render stops before generating with a sentence naming what the
model cannot do, and the same document without those layers renders.

The tiny folders are copies with a ``sample_size`` in the transformer config, so the
planner sizes them at 64 px instead of the family's 1024 (Qwen-Image 2.1's 16× VAE: 4 latent pixels) (a real FLUX folder has none:
the family's native size holds, see planner/families.py).
"""

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
from sfumato.canvas.model.layers import ControlSettings, Role
from sfumato.canvas.render.composite import flatten
from sfumato.inference.families import get_family
from sfumato.vocabulary.kinds import ControlKind, Mode
from tinyflow import tiny_flow_model

from sfumato.cli import main

W, H = 80, 64
MASK = (24, 16, 32, 32)
#: tiny folder kind → (its ControlNet kind or None)
FAMILIES = {
    "flux": "controlnet-flux",
    "chroma": None,
    "sd3": "controlnet-sd3",
    "zimage": "controlnet-zimage",
    "qwenimage": "controlnet-qwenimage",
    "flux2-klein": None,
    "qwenimage21": None,
}


def _sized_copy(kind: str, root: Path) -> Path:
    """The tiny folder with a 64 px native size the planner can read."""
    folder = root / kind
    if not folder.exists():
        shutil.copytree(tiny_flow_model(kind), folder)
        config_path = folder / "transformer" / "config.json"
        config = json.loads(config_path.read_text())
        config.setdefault("sample_size", 4 if kind == "qwenimage21" else 8)  # its VAE is 16x
        config_path.write_text(json.dumps(config))
    return folder


def _document(path: Path, *, with_extras: bool) -> np.ndarray:
    x, y, w, h = MASK
    mask_pixels = rgba(h, w, alpha=255)
    scribble = rgba(H, W, alpha=0)
    scribble[10:50, 30:34] = (0, 0, 0, 255)
    extras = (
        [
            layer("sketch", scribble, role=Role.CONTROL, control=ControlSettings(ControlKind.SCRIBBLE, strength=0.8)),
            layer("sky", rgba(H // 2, W, alpha=255), role=Role.REGION, prompt="a blue sky"),
            layer("meadow", rgba(H, W, alpha=255), role=Role.REGION, prompt="a green meadow"),
        ]
        if with_extras
        else []
    )
    doc = document(W, H, *extras, layer("Mask", mask_pixels, role=Role.INPAINT_MASK, x=x, y=y),
                   layer("paint", gradient(H, W)))  # fmt: skip
    doc.recipe = Recipe(prompt="a landscape", seed=5, steps=2, cfg=3.0, strength=1.0, sampler="euler")
    save_ora(doc, path)
    inside = np.zeros((H, W), bool)
    inside[y : y + h, x : x + w] = True
    return inside


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_render_each_family(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _sized_copy(kind, tmp_path)
    family = get_family({"flux2-klein": "flux2"}.get(kind, kind))
    controlnet = FAMILIES[kind]
    can_all = {Mode.REGIONS, Mode.CONTROLNET, Mode.INPAINT} <= family.supported_modes and controlnet is not None
    source, out = tmp_path / "in.ora", tmp_path / "out.png"
    inside = _document(source, with_extras=True)
    args = ["render", str(source), "-o", str(out), "--model", str(model), "-q"]
    if controlnet is not None:
        args += ["--controlnet", f"scribble={tiny_flow_model(controlnet)}"]
    status = main(args)
    if not can_all:
        assert status != 0
        said = capsys.readouterr().err
        assert f"{family.label} models cannot do" in said, said
        inside = _document(source, with_extras=False)
        status = main(["render", str(source), "-o", str(out), "--model", str(model), "-q"])
    assert status == 0, capsys.readouterr().err
    before = flatten(load_ora(source))
    after = np.asarray(Image.open(out).convert("RGBA"))
    assert np.array_equal(after[~inside], before[~inside])
    assert not np.array_equal(after[inside], before[inside])

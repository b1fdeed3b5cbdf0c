"""The built-in model is the embedded default: found with nothing configured, listed with
its plain label, and used by ``sfumato render`` offline when no model is named.

The test session has an empty configuration folder and no system model folders
(``tests/conftest.py``), and a socket guard that fails any network connection.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from semantic_judges import dilate, document, erode, rate, read_colour, reads_as, sd
from semantic_run import BATCH, CFG, SEED, STEPS, BuiltinModel, meaning
from sfumato.canvas.files.image_parameters import read_png_parameters
from sfumato.canvas.files.ora import save_ora
from sfumato.canvas.model.document import Recipe

from sfumato import cli

pytestmark = pytest.mark.semantic

SIZE = 64  # the built-in model's native side
LABEL = "built-in demo model — shapes and colours; add a Stable Diffusion checkpoint for real work"


def test_default_model_is_the_builtin_one_when_nothing_is_configured(builtin_model: BuiltinModel) -> None:
    from sfumato.inference.catalog import BUILTIN_SOURCE, Origin, find_default_model

    entry = find_default_model()
    assert entry.source == BUILTIN_SOURCE == "builtin"
    assert entry.origin is Origin.BUILTIN
    assert entry.label == LABEL
    assert entry.path is not None and entry.path.resolve() == builtin_model.folder.resolve()
    assert entry.family == "sd15"


def test_models_command_lists_the_builtin_model_with_its_label(
    builtin_model: BuiltinModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(LABEL)]
    assert len(rows) == 1, out
    assert rows[0].split()[-1] == "builtin"
    assert "built-in scribble ControlNet" in out


def test_render_without_a_model_uses_the_builtin_one_offline(
    builtin_model: BuiltinModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sfumato render`` with no model anywhere draws the prompt with the built-in model:
    over the semantic seeds, the picture reads as the prompt's shape colour inside the
    circle and the background colour around it (the judges of ``semantic_judges``), in
    at least REQUIRED of BATCH images — a blank, a random or another model's picture
    does not."""
    prompt = "a red circle on a blue background"
    recipe = Recipe(prompt=prompt, seed=SEED, steps=STEPS, cfg=CFG)
    doc = document(SIZE)
    doc.recipe = recipe
    source = tmp_path / "hand.ora"
    save_ora(doc, source)
    output = tmp_path / "out.png"
    started = time.perf_counter()
    status = cli.main(["render", str(source), "-o", str(output), "--batch", str(BATCH)])
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    print(f"sfumato render with the built-in model: {seconds:.1f} s ({BATCH}×{STEPS} steps, {SIZE} px, model load included)")
    assert status == 0, err
    assert "built-in demo model" in err  # the user is told which model drew it
    spec = sd.parse_caption(prompt)
    cover = sd.shape_mask(spec.shapes[0], SIZE)
    inside, outside = erode(cover > 0.5, 2), ~dilate(cover > 0.05, 4)  # as test_semantic_txt2img
    ok = []
    readings = []
    for k in range(1, BATCH + 1):
        path = output.with_name(f"out-{k}.png")
        image = np.asarray(Image.open(path).convert("RGB"))
        assert image.shape == (SIZE, SIZE, 3)
        ok.append(reads_as(image[inside], "red") and reads_as(image[outside], "blue"))
        readings.append(f"  seed {SEED + k - 1}: shape {read_colour(image[inside])}; bg {read_colour(image[outside])}")
        parameters = read_png_parameters(path)
        assert parameters is not None
        assert parameters["prompt"] == prompt
        assert parameters.get("model") == "builtin", parameters
        assert int(parameters["seed"]) == SEED + k - 1, parameters
    report = f"red circle on blue, rendered with no model named: {rate(ok)}\n" + "\n".join(readings)
    print(report)
    meaning(sum(ok), report)

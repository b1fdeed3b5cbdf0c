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
from semantic_judges import document
from semantic_run import BuiltinModel
from sfumato.canvas.document import Recipe
from sfumato.canvas.ora import save_ora
from sfumato.canvas.parameters import read_png_parameters

from sfumato import cli

pytestmark = pytest.mark.semantic

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
    recipe = Recipe(prompt="a red circle on a blue background", seed=5, steps=8, cfg=5.0)
    doc = document(64)
    doc.recipe = recipe
    source = tmp_path / "hand.ora"
    save_ora(doc, source)
    output = tmp_path / "out.png"
    started = time.perf_counter()
    status = cli.main(["render", str(source), "-o", str(output)])
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    print(f"sfumato render with the built-in model: {seconds:.1f} s (8 steps, 64 px, model load included)")
    assert status == 0, err
    assert "built-in demo model" in err  # the user is told which model drew it
    image = np.asarray(Image.open(output).convert("RGB"))
    assert image.shape == (64, 64, 3)
    assert image.std() > 5, "the result is blank"
    parameters = read_png_parameters(output)
    assert parameters is not None
    assert parameters["prompt"] == "a red circle on a blue background"
    assert parameters.get("model") == "builtin", parameters

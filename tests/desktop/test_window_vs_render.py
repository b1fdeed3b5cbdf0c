"""The window and ``sfumato render`` record the same generation (issue 11).

One document (the window's, with an inpaint mask and the tiny SD 1.x model in its
recipe) is generated twice with the same seed, steps and model: through the window's
controller (generate → staged → accept) and through ``sfumato render`` on the same
document saved as .ora. Both results are read back from .ora files, as a user would
find them, and compared: the ``generation`` record of the placed layer, the
``parameters`` text of the exported picture, and the pixels (byte for byte).

Both runs use one torch CPU thread. The window's worker normally leaves a core for the
GUI (:func:`~sfumato.desktop.worker.leave_a_core_for_the_gui`), so it would run with
fewer intra-op threads than the command line, and float reductions split over a
different number of threads round differently (on a 2-core machine: 8 pixels one level
apart). That is the machine's arithmetic, not the record or the placement under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diffusers  # noqa: F401 - required dependencies (pyproject.toml): missing is a failure
import numpy as np
import pytest
import torch  # noqa: F401
from genfixtures import gen_window, paint_mask, tiny_engine_factory, tiny_model
from PIL import Image
from sfumato.canvas.files.image_parameters import read_png_text
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.files.recipe_parameters import picture_parameters
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.render.composite import flatten

from sfumato.cli import main

__all__ = ["gen_window", "tiny_engine_factory", "tiny_model"]  # fixtures used by name

TIMEOUT = 60_000  # ms

#: Fields of the record that legitimately differ between two runs of the same generation:
#: ``seconds`` is the wall-clock time the engine took (the window's status line shows it).
#: Everything else — the request, the area, the seed, the family the engine loaded, the
#: steps it ran — must be the same.
RUN_DEPENDENT = ("seconds",)


def generated_layer(doc: Any) -> PixelLayer:
    layers = [la for la in doc.pixel_layers() if la.role is Role.GENERATED]
    assert len(layers) == 1, [la.name for la in layers]
    return layers[0]


def layer_pixels(layer: PixelLayer) -> np.ndarray:
    """The layer's pixels over its generation area (document space)."""
    assert layer.generation is not None
    x, y, w, h = layer.generation["area"]
    return layer.surface.read(Rect(x - layer.x, y - layer.y, w, h))


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in RUN_DEPENDENT}


@pytest.fixture
def one_cpu_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """torch on one CPU thread in the window's worker and on this (the CLI's) thread."""
    from sfumato.desktop import worker

    monkeypatch.setattr(worker, "leave_a_core_for_the_gui", lambda engine: torch.set_num_threads(1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_cpu_thread")
def test_window_and_render_save_the_same_generation(gen_window: Any, qtbot: Any, tmp_path: Path) -> None:
    controller = gen_window.generation
    doc = gen_window.document
    paint_mask(doc)
    source = tmp_path / "in.ora"
    save_ora(doc, source)  # the very document the window generates from

    # The window: generate, accept, save.
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
    assert controller.staging.accept() is not None
    window_ora = tmp_path / "window.ora"
    save_ora(doc, window_ora)
    window_doc = load_ora(window_ora)

    # The command line on the same document (same model, seed and steps from its recipe).
    out, layered = tmp_path / "out.png", tmp_path / "out.ora"
    assert main(["render", str(source), "-o", str(out), "--layered", str(layered),
                 "--device", "cpu", "-q"]) == 0
    cli_doc = load_ora(layered)

    window_layer, cli_layer = generated_layer(window_doc), generated_layer(cli_doc)
    window_record, cli_record = window_layer.generation, cli_layer.generation
    assert window_record is not None and cli_record is not None
    assert set(window_record) == set(cli_record), "both records hold the same fields"
    assert comparable(window_record) == comparable(cli_record)
    assert window_record["seed"] == 5 and window_record["steps"] == 3

    # The parameters text: the window's picture export and the CLI's PNG chunk.
    assert picture_parameters(window_doc) == read_png_text(out)["parameters"]

    # The pixels: the placed layers and the flattened pictures, byte for byte.
    window_pixels, cli_pixels = layer_pixels(window_layer), layer_pixels(cli_layer)
    assert window_pixels[..., 3].any(), "the result layer is empty over its area"
    assert np.array_equal(window_pixels, cli_pixels), "the window and the CLI placed different pixels"
    assert window_layer.name == cli_layer.name
    assert np.array_equal(flatten(window_doc), np.asarray(Image.open(out).convert("RGBA")))

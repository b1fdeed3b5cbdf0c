"""Image → Upscale… in the window: the dialog, Lanczos and the built-in model's tiled refine
on the worker thread into a new document, Esc cancels, a refused file is a message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop.layer_actions import visible_picture
from sfumato.desktop.upscale_dialog import UpscaleChoice, UpscaleDialog, install_upscale
from sfumato.planner.resample import resize_image
from sfumato.planner.sizing import Size


def painted(width: int = 48, height: int = 40) -> Document:
    y, x = np.mgrid[0:height, 0:width]
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 0] = x * 255 // width
    rgba[..., 1] = y * 255 // height
    rgba[..., 2] = 200
    rgba[10:25, 12:30, :3] = (240, 220, 0)
    rgba[..., 3] = 255
    doc = Document(width, height, recipe=Recipe(prompt="a yellow square on a blue background", model="builtin", seed=3, steps=8))
    layer = PixelLayer("Paint", TiledSurface.from_array(rgba))
    doc.root.append(layer)
    doc.active = layer
    return doc


@pytest.fixture
def upscale_window(window):  # noqa: ANN001, ANN201
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.inference.engine import Engine

    controller = install_generation(window, lambda: Engine(device="cpu"))
    job = install_upscale(window, controller)
    window.set_document(painted())
    controller.dock.choose_model("builtin")
    yield window, job
    controller.shutdown()


def test_the_dialog_says_what_it_will_do(qtbot) -> None:  # noqa: ANN001
    dialog = UpscaleDialog(300, 200, UpscaleChoice(scale=3, upscaler="/m/4x.pth", strength=0.4, tile=512))
    qtbot.addWidget(dialog)
    assert dialog.result_size.text() == "900 × 600 px"
    assert dialog.choice() == UpscaleChoice(scale=3, upscaler="/m/4x.pth", refine=True, strength=0.4, tile=512)
    dialog.refine.setChecked(False)
    dialog.tile.setValue(0)
    dialog.upscaler.setText("")
    assert not dialog.strength.isEnabled()
    assert dialog.choice() == UpscaleChoice(scale=3, upscaler=None, refine=False, strength=0.4, tile=None)


def test_the_menu_entry_is_in_the_image_menu(upscale_window) -> None:  # noqa: ANN001
    window, _job = upscale_window
    assert window.actions["upscale"] in window.menus["image"].actions()


def test_lanczos_upscale_opens_a_new_document(upscale_window, qtbot) -> None:  # noqa: ANN001
    window, job = upscale_window
    old = window.document
    expected = resize_image(visible_picture(old), Size(96, 80))
    assert job.start(old, UpscaleChoice(scale=2, refine=False)) is not None
    qtbot.waitUntil(lambda: window.document is not old, timeout=60_000)
    doc = window.document
    assert (doc.width, doc.height) == (96, 80) and doc.recipe.prompt == old.recipe.prompt
    assert (visible_picture(doc) == expected).all()
    assert not doc.history.is_clean  # closing it asks to save
    assert window.files.path is None


def test_refine_with_the_builtin_model_on_the_worker(upscale_window, qtbot) -> None:  # noqa: ANN001
    window, job = upscale_window
    old = window.document
    progress: list[tuple[int, int]] = []
    window.generation_controller.worker.progress.connect(lambda _j, s, t: progress.append((s, t)))
    assert job.start(old, UpscaleChoice(scale=2, refine=True, strength=0.3)) is not None
    qtbot.waitUntil(lambda: window.document is not old, timeout=120_000)
    result = visible_picture(window.document)
    assert result.shape == (80, 96, 3)
    lanczos = resize_image(visible_picture(old), Size(96, 80)).astype(float)
    assert 0 < np.abs(result - lanczos).mean() < 40  # refined, not replaced
    assert progress and progress[-1] == (1000, 1000)


def test_escape_cancels_the_upscale(upscale_window, qtbot) -> None:  # noqa: ANN001
    window, job = upscale_window
    old = window.document
    messages: list[str] = []
    job.message.connect(messages.append)
    assert job.start(old, UpscaleChoice(scale=4, refine=True)) is not None
    window.generation_controller.worker.progress.connect(lambda *_a: window.actions["cancel"].trigger())
    qtbot.waitUntil(lambda: not job.busy, timeout=120_000)
    assert window.document is old
    assert "Upscale cancelled." in messages


def test_a_pickle_with_code_is_refused_in_the_dock(upscale_window, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    window, job = upscale_window
    evil = tmp_path / "4x-evil.pth"
    torch.save({"x": Path("y")}, str(evil))
    assert job.start(window.document, UpscaleChoice(scale=2, upscaler=str(evil), refine=False)) is not None
    qtbot.waitUntil(lambda: not job.busy, timeout=60_000)
    assert "4x-evil.pth" in window.generation_controller.dock.error_text
    assert job.start(window.document, UpscaleChoice(scale=2, upscaler=str(tmp_path / "none.pth"))) is None

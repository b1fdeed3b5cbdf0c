"""Image → Upscale… in the window: the dialog, Lanczos and the built-in model's tiled refine
on the worker thread into a new document or into this one (one undo step, tile previews
over the canvas), the dock's "tile k of n", Esc cancels, a refused file is a message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop.layer_actions import visible_picture
from sfumato.desktop.upscale_dialog import (
    Destination,
    UpscaleChoice,
    UpscaleDialog,
    install_upscale,
)
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
    assert dialog.into_new.isChecked() and dialog.choice().destination is Destination.NEW_DOCUMENT
    dialog.into_this.setChecked(True)
    assert dialog.choice().destination is Destination.THIS_DOCUMENT
    again = UpscaleDialog(300, 200, dialog.choice())
    qtbot.addWidget(again)
    assert again.into_this.isChecked() and not again.into_new.isChecked()


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


def dock_formats(window) -> list[str]:  # noqa: ANN001
    """The dock's progress text after each tile step the worker reports."""
    formats: list[str] = []
    window.generation_controller.worker.upscale_tile.connect(
        lambda *_a: formats.append(window.generation_controller.dock.progress.format()))
    return formats


def test_refine_into_this_document_is_one_undo_step_with_tile_previews(upscale_window, qtbot) -> None:  # noqa: ANN001
    window, job = upscale_window
    doc = window.document
    before = visible_picture(doc)
    undo_steps = doc.history.undo_count
    shown: list[Rect] = []
    job.preview_shown.connect(shown.append)
    choice = UpscaleChoice(scale=2, refine=True, strength=0.3, tile=32, destination=Destination.THIS_DOCUMENT)
    assert job.start(doc, choice) is not None
    formats = dock_formats(window)  # connected after the job's own slots
    qtbot.waitUntil(lambda: not job.busy, timeout=120_000)
    assert window.document is doc and (doc.width, doc.height) == (96, 80)
    top = doc.root.children[0]
    assert isinstance(top, PixelLayer) and top.role is Role.GENERATED
    assert top.generation["extra"]["Upscale"] == "2x" and top.generation["strength"] == 0.3
    assert doc.history.undo_count == undo_steps + 1
    # each tile's previews were drawn over the canvas where the tile lies (document pixels)
    assert len({(r.x, r.y) for r in shown}) > 1
    assert all(Rect(0, 0, 48, 40).contains(r) for r in shown)
    assert not window.generation_controller.preview.visible  # cleared at the end
    assert any(f.startswith("Tile 1 of ") and ", step " in f for f in formats)
    doc.undo()  # one step: the layer goes and the size comes back
    assert (doc.width, doc.height) == (48, 40)
    assert all(layer is not top for layer in doc.root.children)
    assert (visible_picture(doc) == before).all()


def test_into_a_new_document_the_dock_says_which_tile(upscale_window, qtbot) -> None:  # noqa: ANN001
    window, job = upscale_window
    old = window.document
    shown: list[Rect] = []
    job.preview_shown.connect(shown.append)
    assert job.start(old, UpscaleChoice(scale=2, refine=True, tile=64)) is not None
    formats = dock_formats(window)
    qtbot.waitUntil(lambda: window.document is not old, timeout=120_000)
    assert shown == []  # no canvas to draw on: the dock says where the refine is
    steps = [f for f in formats if f.startswith("Tile ")]
    assert steps and all(" of 4" in f.split(",")[0] for f in steps), steps
    assert any(f.startswith("Tile 4 of 4, step ") for f in steps)


def test_regions_of_the_open_document_go_to_the_tiles(upscale_window, qtbot) -> None:  # noqa: ANN001
    window, job = upscale_window
    doc = window.document
    left = PixelLayer("left", TiledSurface.from_array(np.full((40, 24, 4), 255, np.uint8)), role=Role.REGION,
                      prompt="red")  # fmt: skip
    doc.root.insert(0, left)
    submitted: list = []
    worker = window.generation_controller.worker
    original = worker.submit
    worker.submit = lambda work: (submitted.append(work), original(work))[1]  # type: ignore[method-assign]
    try:
        assert job.start(doc, UpscaleChoice(scale=2, refine=True, tile=64)) is not None
    finally:
        worker.submit = original  # type: ignore[method-assign]
    plan = submitted[0].plan
    assert plan.document is not None and plan.document is not doc  # a snapshot, planned on the worker
    assert "1 region(s) planned over each tile" in plan.notes
    qtbot.waitUntil(lambda: not job.busy, timeout=120_000)

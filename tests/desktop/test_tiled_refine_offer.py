"""A whole-canvas Refine larger than the model generates in one go: the Generation dock
says so and offers "Refine in tiles at full resolution", which refines at scale 1 with
the dock's settings into this document as one generated layer (one undo step)."""

from __future__ import annotations

import numpy as np
import pytest
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop.layer_actions import visible_picture
from sfumato.desktop.upscale_dialog import install_upscale


def painted(width: int, height: int) -> Document:
    y, x = np.mgrid[0:height, 0:width]
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 0] = x * 255 // width
    rgba[..., 1] = y * 255 // height
    rgba[..., 2] = 160
    rgba[..., 3] = 255
    doc = Document(width, height, recipe=Recipe(prompt="a landscape", model="builtin", seed=2, steps=4, strength=0.4))
    layer = PixelLayer("Paint", TiledSurface.from_array(rgba))
    doc.root.append(layer)
    doc.active = layer
    return doc


@pytest.fixture
def offer_window(window):  # noqa: ANN001, ANN201
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.inference.engine import Engine

    controller = install_generation(window, lambda: Engine(device="cpu"))
    job = install_upscale(window, controller)
    controller.dock.choose_model("builtin")  # native 64 px, at most 80 a side
    yield window, controller, job
    controller.shutdown()


def test_no_offer_when_the_canvas_fits_the_model(offer_window) -> None:  # noqa: ANN001
    window, controller, _job = offer_window
    window.set_document(painted(64, 64))
    assert controller.refresh_mode() == "Refine"
    assert controller.dock.tiled_offer_text == ""


def test_the_offer_follows_the_mode(offer_window) -> None:  # noqa: ANN001
    window, controller, _job = offer_window
    window.set_document(painted(160, 96))
    controller.refresh_mode()
    text = controller.dock.tiled_offer_text
    assert "160×96" in text and "Refine in tiles at full resolution" in text and "href" in text
    controller.dock.strength.setValue(1.0)  # a Generate from nothing: nothing to refine
    controller.refresh_mode()
    assert controller.dock.tiled_offer_text == ""


def test_the_offer_refines_in_tiles_into_this_document(offer_window, qtbot) -> None:  # noqa: ANN001
    window, controller, job = offer_window
    doc = painted(160, 96)
    window.set_document(doc)
    controller.refresh_mode()
    before = visible_picture(doc)
    steps = doc.history.undo_count
    shown: list = []
    job.preview_shown.connect(shown.append)
    controller.dock.tiled_offer.linkActivated.emit("tiled-refine")  # the link in the dock
    assert job.busy
    qtbot.waitUntil(lambda: not job.busy, timeout=60_000)
    assert window.document is doc and (doc.width, doc.height) == (160, 96)  # scale 1: the same size
    top = doc.root.children[0]
    assert isinstance(top, PixelLayer) and top.role is Role.GENERATED
    record = top.generation
    assert record["extra"]["Upscale"] == "1x" and record["strength"] == 0.4 and record["prompt"] == "a landscape"
    assert record["extra"]["Upscaler"] == "Lanczos"
    after = visible_picture(doc).astype(float)
    assert 0 < np.abs(after - before).mean() < 60  # refined, not replaced
    assert shown  # the tiles' previews over the canvas
    assert doc.history.undo_count == steps + 1
    doc.undo()
    assert (visible_picture(doc) == before).all()

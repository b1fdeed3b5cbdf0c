"""Depth from Image in the window: the visible picture through the worker's engine and a
tiny depth estimator, into the depth control layer as one undo step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role
from sfumato.desktop import layer_actions
from sfumato.vocabulary.kinds import ControlKind
from tinydepth import tiny_depth_model

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_depth_model(tmp_path_factory.mktemp("depth"))


@pytest.fixture
def depth_window(window, tmp_path: Path):  # noqa: ANN001, ANN201
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.inference.engine import Engine

    controller = install_generation(window, lambda: Engine(device="cpu", models_root=tmp_path))
    yield window
    controller.shutdown()


def _picture(doc) -> None:  # noqa: ANN001
    """A left-to-right ramp with a dark square on the paint layer (something to see)."""
    h, w = doc.height, doc.width
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    rgba[..., 1] = 120
    rgba[60:140, 80:200, :3] = 20
    rgba[..., 3] = 255
    paint = next(layer for layer in doc.pixel_layers() if layer.name == "Paint")
    editing.put_pixels(doc, paint, rgba, 0, 0)


def test_depth_from_image_fills_the_layer_in_one_undo_step(depth_window, depth_model: Path, qtbot) -> None:  # noqa: ANN001
    window = depth_window
    doc = window.document
    _picture(doc)
    layer = layer_actions.add_layer(doc, Role.CONTROL)
    assert isinstance(layer, PixelLayer)
    editing.set_property(doc, layer, "control", ControlSettings(ControlKind.DEPTH))
    layer.surface.write(400, 5, np.full((3, 3, 4), 77, np.uint8))  # beyond the canvas: replaced too
    editing.set_offset(doc, layer, 3, -2)
    steps = doc.history.undo_count
    old = layer.surface.read(layer.surface.bounds()).copy()
    old_bounds = layer.surface.bounds()

    window.depth_job.model = str(depth_model)
    with qtbot.waitSignal(window.depth_job.placed, timeout=60_000):
        window.actions["depth_from_image"].trigger()

    assert doc.history.undo_count == steps + 1
    assert doc.history.undo_label == "Depth from Image"
    from sfumato.inference.depth import estimate_depth

    expected = estimate_depth(depth_model, layer_actions.visible_picture(doc))
    got = layer.surface.read(layer.document_bounds().translate(-layer.x, -layer.y))
    assert layer.document_bounds() == Rect(0, 0, doc.width, doc.height)  # the canvas, nothing beyond
    assert got.shape == (doc.height, doc.width, 4)
    assert np.array_equal(got[..., 0], expected) and np.array_equal(got[..., 2], expected)
    assert (got[..., 3] == 255).all()
    assert expected.min() == 0 and expected.max() == 255

    window.actions["undo"].trigger()
    assert layer.surface.bounds() == old_bounds
    assert np.array_equal(layer.surface.read(old_bounds), old)


def test_depth_from_image_refuses_other_layers_and_reports_a_missing_estimator(
    depth_window, qtbot, tmp_path: Path  # noqa: ANN001
) -> None:
    window = depth_window
    doc = window.document
    shown: list[str] = []
    window.depth_job.message.connect(shown.append)
    window.actions["depth_from_image"].trigger()  # the paint layer is active
    assert "control layer" in shown[-1]
    layer = layer_actions.add_layer(doc, Role.CONTROL)  # a scribble control
    window.actions["depth_from_image"].trigger()
    assert "not a depth control" in shown[-1]
    editing.set_property(doc, layer, "control", ControlSettings(ControlKind.DEPTH))
    steps = doc.history.undo_count
    window.depth_job.model = str(tmp_path / "no-such-estimator")
    window.actions["depth_from_image"].trigger()
    qtbot.waitUntil(lambda: not window.depth_job.busy, timeout=60_000)
    assert "failed" in shown[-1]
    assert doc.history.undo_count == steps



def test_the_docks_from_image_on_a_depth_layer_runs_the_estimator(depth_window, depth_model: Path, qtbot) -> None:  # noqa: ANN001
    window = depth_window
    doc = window.document
    _picture(doc)
    layer = layer_actions.add_layer(doc, Role.CONTROL)
    editing.set_property(doc, layer, "control", ControlSettings(ControlKind.DEPTH))
    window.depth_job.model = str(depth_model)
    with qtbot.waitSignal(window.depth_job.placed, timeout=60_000):
        window.layers_dock.properties.from_image.click()
    assert doc.history.undo_label == "Depth from Image"
    assert layer.document_bounds() == Rect(0, 0, doc.width, doc.height)

"""Reference layers in the window: a layer made a reference layer and its settings
edited (each undoable), image files dropped on the Layers dock and the "from image"
action (one undo step each), and the Layer menu's entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog
from sfumato.canvas import editing
from sfumato.canvas.model.layers import ReferenceSettings, Role
from sfumato.vocabulary.kinds import ReferenceKind


def _image(path: Path, w: int = 60, h: int = 40) -> Path:
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[..., 0] = 220
    pixels[: h // 2, :, 2] = 200
    Image.fromarray(pixels).save(path)
    return path


def test_make_reference_layer_and_edit_its_settings_undoably(window) -> None:  # noqa: ANN001
    doc = window.document
    dock = window.layers_dock
    props = dock.properties
    paint = doc.find("Paint")
    doc.set_active(paint)
    assert props.role.isVisibleTo(props) and not props.reference_kind.isVisibleTo(props)
    # Role combo → Reference: default settings, the reference editors appear
    props.role.setCurrentIndex(props.role.findData(Role.REFERENCE))
    props.role.activated.emit(props.role.currentIndex())
    assert paint.role is Role.REFERENCE and paint.reference == ReferenceSettings()
    assert props.reference_kind.isVisibleTo(props) and props.strength.isVisibleTo(props)
    assert not props.kind.isVisibleTo(props) and not props.from_image.isVisibleTo(props)
    props.reference_kind.setCurrentIndex(props.reference_kind.findData(ReferenceKind.STYLE))
    props.reference_kind.activated.emit(props.reference_kind.currentIndex())
    props.strength.setValue(1.4)
    props.start.setValue(0.25)
    assert paint.reference == ReferenceSettings(ReferenceKind.STYLE, 1.4, 0.25, 1.0)
    assert paint.control is None  # the shared editors wrote the reference settings only
    summary = dock.model.data(dock.model.index_of(paint, 1))
    assert "style" in summary and "1.40" in summary and "25–100%" in summary
    # one undo step takes the settings edit back (an editing burst merges), the next the role
    assert doc.history.undo_label == "Reference Settings"
    window.actions["undo"].trigger()
    assert paint.reference == ReferenceSettings() and paint.role is Role.REFERENCE
    assert props.strength.value() == 1.0 and props.reference_kind.currentData() is ReferenceKind.CONTENT
    window.actions["undo"].trigger()
    assert paint.role is Role.PAINT and paint.reference is None
    assert not props.reference_kind.isVisibleTo(props)
    window.actions["redo"].trigger()
    assert paint.role is Role.REFERENCE and props.reference_kind.isVisibleTo(props)


def test_role_submenu_action_makes_a_reference_layer(window) -> None:  # noqa: ANN001
    doc = window.document
    paint = doc.find("Paint")
    window.layers_dock.set_role(paint, Role.REFERENCE)
    assert paint.role is Role.REFERENCE and paint.reference is not None
    assert doc.history.undo_label == "Layer Role"
    window.actions["undo"].trigger()
    assert paint.role is Role.PAINT


def test_dropping_an_image_on_the_layers_dock_adds_a_reference_layer(window, tmp_path: Path) -> None:  # noqa: ANN001
    doc = window.document
    dock = window.layers_dock
    path = _image(tmp_path / "portrait.png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    viewport = dock.tree.viewport()
    centre = viewport.rect().center()
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, enter)
    assert enter.isAccepted()
    before = len(list(doc.layers()))
    drop = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, drop)
    layers = list(doc.pixel_layers(Role.REFERENCE))
    assert len(layers) == 1 and len(list(doc.layers())) == before + 1
    ref = layers[0]
    assert ref.name == "portrait" and ref.reference == ReferenceSettings()
    bounds = ref.document_bounds()
    assert (bounds.w, bounds.h) == (60, 40)
    assert bounds.x == (doc.width - 60) // 2 and bounds.y == (doc.height - 40) // 2
    pixels = ref.surface.read(ref.surface.bounds())
    assert tuple(pixels[0, 0]) == (220, 0, 200, 255) and tuple(pixels[-1, -1]) == (220, 0, 0, 255)
    assert doc.active is ref
    window.actions["undo"].trigger()  # one step takes it away
    assert not list(doc.pixel_layers(Role.REFERENCE)) and len(list(doc.layers())) == before


def test_internal_drags_and_other_files_are_not_taken(window, tmp_path: Path) -> None:  # noqa: ANN001
    doc = window.document
    viewport = window.layers_dock.tree.viewport()
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(text))])
    drop = QDropEvent(QPointF(QPoint(5, 5)), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, drop)
    assert not list(doc.pixel_layers(Role.REFERENCE))


def test_reference_from_image_action_and_menu(window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    doc = window.document
    path = _image(tmp_path / "style.jpg", 30, 30)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    texts = [a.text() for a in window.menus["layer"].actions()]
    control = texts.index("New &Control Layer")
    assert texts[control + 1 : control + 3] == ["New R&eference Layer", "New Reference Layer from &Image…"]
    window.actions["add_reference_image"].trigger()
    (ref,) = doc.pixel_layers(Role.REFERENCE)
    assert ref.name == "style" and not ref.surface.is_empty()
    assert window.layers_dock.properties.reference_kind.isVisibleTo(window.layers_dock.properties)
    # the plain "New Reference Layer" adds an empty one with default settings
    window.actions["add_reference"].trigger()
    refs = list(doc.pixel_layers(Role.REFERENCE))
    assert len(refs) == 2 and all(r.reference == ReferenceSettings() for r in refs)


def test_generation_dock_names_a_model_that_takes_no_references(window, monkeypatch) -> None:  # noqa: ANN001
    """A Chroma model takes no reference pictures: a reference layer says so under the
    Generation dock and Generate waits; hiding the layer, or choosing FLUX.2 Klein, lets
    it go again."""
    from genfixtures import FakeEngine
    from sfumato.desktop import models_dock
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.inference.catalog import ModelEntry, Origin, WeightsKind
    from sfumato.vocabulary.kinds import Sampler

    entries = [
        ModelEntry(WeightsKind.CHECKPOINT, "/models/chroma.safetensors", "chroma", "chroma", Origin.CONFIGURED),
        ModelEntry(WeightsKind.CHECKPOINT, "/models/klein.safetensors", "klein", "flux2", Origin.CONFIGURED),
    ]
    monkeypatch.setattr(models_dock, "list_models", lambda: entries)
    controller = install_generation(window, FakeEngine)  # type: ignore[arg-type]
    dock = controller.dock
    dock.choose_model("/models/chroma.safetensors")
    dock.sampler.setCurrentIndex(dock.sampler.findData(Sampler.EULER))
    assert dock.problems_text == "" and dock.generate_button.isEnabled()
    ref = window.layers_dock.add_layer(Role.REFERENCE)
    controller.refresh_mode()
    assert "Chroma models take no reference pictures" in dock.problems_text
    assert not dock.generate_button.isEnabled()
    editing.set_property(window.document, ref, "visible", False)
    controller.refresh_mode()
    assert dock.problems_text == "" and dock.generate_button.isEnabled()
    editing.set_property(window.document, ref, "visible", True)
    dock.choose_model("/models/klein.safetensors")
    controller.refresh_mode()
    assert dock.problems_text == "" and dock.generate_button.isEnabled()
    controller.shutdown()

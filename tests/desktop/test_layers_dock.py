"""The Layers dock: adding, reordering, visibility, opacity, region prompts, control layers;
every change reaches the document and undoes."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import QByteArray, QMimeData, QModelIndex, Qt
from sfumato.canvas import editing
from sfumato.canvas.model.layers import GroupLayer, PixelLayer, Role
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.desktop.layer_model import MIME_TYPE, thumbnail_array
from sfumato.vocabulary.kinds import ControlKind


def _names(group: GroupLayer) -> list[str]:
    return [layer.name for layer in group.children]


def _drag(model, layers, row: int, parent: QModelIndex) -> None:  # noqa: ANN001
    mime = QMimeData()
    mime.setData(MIME_TYPE, QByteArray(json.dumps([layer.id for layer in layers]).encode()))
    assert model.canDropMimeData(mime, Qt.DropAction.MoveAction, row, 0, parent)
    model.dropMimeData(mime, Qt.DropAction.MoveAction, row, 0, parent)


def test_model_mirrors_the_document_tree(window) -> None:  # noqa: ANN001
    dock = window.layers_dock
    model = dock.model
    assert model.rowCount() == 2
    assert model.data(model.index(0, 0)) == "Paint"
    assert model.data(model.index(1, 0)) == "Background"
    assert model.data(model.index(0, 0), Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert model.data(model.index(1, 0), Qt.ItemDataRole.DecorationRole) is not None
    # The active layer is the tree's current row.
    assert model.layer(dock.tree.currentIndex()) is window.document.active


def test_add_each_kind_of_layer_and_undo(window) -> None:  # noqa: ANN001
    doc = window.document
    dock = window.layers_dock
    for role in (Role.PAINT, None, Role.INPAINT_MASK, Role.REGION, Role.CONTROL):
        dock.add_actions[role].trigger()
    kinds = [
        ("group" if isinstance(layer, GroupLayer) else layer.role.value) for layer in doc.layers()
    ]
    # The group was active when the next layers were added, so they went into it.
    assert kinds.count("group") == 1
    assert {"inpaint-mask", "region", "control"} <= set(kinds)
    control = next(doc.pixel_layers(Role.CONTROL))
    assert control.control is not None and control.control.kind is ControlKind.SCRIBBLE
    assert doc.active is control
    # The tree shows the new rows too.
    group = next(layer for layer in doc.layers() if isinstance(layer, GroupLayer))
    assert dock.model.rowCount(dock.model.index_of(group)) == 3
    for _ in range(5):
        window.actions["undo"].trigger()
    assert _names(doc.root) == ["Paint", "Background"]
    assert dock.model.rowCount() == 2


def test_drag_to_reorder_and_into_a_group(window) -> None:  # noqa: ANN001
    doc = window.document
    dock = window.layers_dock
    model = dock.model
    paint, background = doc.root.children
    # Drop "Background" above "Paint" (row 0 of the root).
    _drag(model, [background], 0, QModelIndex())
    assert _names(doc.root) == ["Background", "Paint"]
    # Make a group and drop "Paint" onto it.
    doc.set_active(background)
    group = dock.add_layer(None)
    assert isinstance(group, GroupLayer)
    _drag(model, [paint], -1, model.index_of(group))
    assert paint.parent is group
    assert model.rowCount(model.index_of(group)) == 1
    # A group cannot be dropped into itself.
    _drag(model, [group], -1, model.index_of(group))
    assert group.parent is doc.root
    window.actions["undo"].trigger()  # out of the group again
    assert paint.parent is doc.root
    window.actions["undo"].trigger()  # remove the group
    window.actions["undo"].trigger()  # original order
    assert _names(doc.root) == ["Paint", "Background"]


def test_up_down_buttons_move_the_active_layer(window) -> None:  # noqa: ANN001
    doc = window.document
    doc.set_active(doc.find("Background"))
    window.layers_dock.move_active(-1)
    assert _names(doc.root) == ["Background", "Paint"]
    window.layers_dock.move_active(-1)  # already on top: nothing happens
    assert _names(doc.root) == ["Background", "Paint"]


def test_visibility_checkbox_toggles_the_layer_and_the_canvas(window) -> None:  # noqa: ANN001
    doc = window.document
    model = window.layers_dock.model
    background = doc.find("Background")
    index = model.index_of(background)
    view = window.view
    centre = view.map_from_document(doc.width / 2, doc.height / 2).toPoint()
    view.repaint()
    assert view.grab().toImage().pixelColor(centre).red() == 255
    assert model.setData(index, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert background.visible is False
    view.repaint()
    # Now the checkerboard shows through (grey, not white).
    assert view.grab().toImage().pixelColor(centre).red() < 255
    window.actions["undo"].trigger()
    assert background.visible is True


def test_opacity_slider_is_one_undo_step_per_drag(window) -> None:  # noqa: ANN001
    doc = window.document
    props = window.layers_dock.properties
    layer = doc.active
    for value in (90, 70, 50):
        props.opacity.setValue(value)
    assert layer.opacity == 0.5
    assert doc.history.undo_count == 1
    props.opacity.sliderReleased.emit()
    props.opacity.setValue(20)
    assert doc.history.undo_count == 2
    window.actions["undo"].trigger()
    assert layer.opacity == 0.5
    window.actions["undo"].trigger()
    assert layer.opacity == 1.0
    assert props.opacity.value() == 100  # the widget follows the model


def test_blend_mode_and_lock(window) -> None:  # noqa: ANN001
    doc = window.document
    props = window.layers_dock.properties
    layer = doc.active
    props.blend.setCurrentIndex(props.blend.findData(BlendMode.MULTIPLY))
    props.blend.activated.emit(props.blend.currentIndex())
    assert layer.blend is BlendMode.MULTIPLY
    props.locked.setChecked(True)
    assert layer.locked
    window.actions["undo"].trigger()
    window.actions["undo"].trigger()
    assert layer.blend is BlendMode.NORMAL and not layer.locked


def test_region_prompt_edits_inline_and_in_the_panel(window) -> None:  # noqa: ANN001
    doc = window.document
    dock = window.layers_dock
    region = dock.add_layer(Role.REGION)
    assert isinstance(region, PixelLayer)
    model = dock.model
    prompt_index = model.index_of(region, 1)
    assert model.flags(prompt_index) & Qt.ItemFlag.ItemIsEditable
    assert model.setData(prompt_index, "a red barn", Qt.ItemDataRole.EditRole)
    assert region.prompt == "a red barn"
    assert model.data(prompt_index) == "a red barn"
    # The panel shows it and edits it too.
    props = dock.properties
    assert props.prompt.isVisibleTo(props) and props.prompt.toPlainText() == "a red barn"
    props.prompt.setPlainText("a red barn at dusk")
    assert region.prompt == "a red barn at dusk"
    props.negative.setText("fog")
    props.negative.textEdited.emit("fog")
    assert region.negative == "fog"
    window.actions["undo"].trigger()
    window.actions["undo"].trigger()
    assert region.prompt == "a red barn"
    assert props.prompt.toPlainText() == "a red barn"
    # Paint layers have no prompt editors.
    doc.set_active(doc.find("Paint"))
    assert not props.prompt.isVisibleTo(props)
    assert not model.flags(model.index_of(doc.find("Paint"), 1)) & Qt.ItemFlag.ItemIsEditable


def test_control_layer_settings_and_from_image(window) -> None:  # noqa: ANN001
    doc = window.document
    dock = window.layers_dock
    # Something to trace: a dark bar on the white background.
    paint = doc.find("Paint")
    bar = np.zeros((40, 200, 4), np.uint8)
    bar[..., 3] = 255
    editing.put_pixels(doc, paint, bar, 60, 100)
    control = dock.add_layer(Role.CONTROL)
    props = dock.properties
    assert props.kind.isVisibleTo(props)
    props.kind.setCurrentIndex(props.kind.findData(ControlKind.CANNY))
    props.kind.activated.emit(props.kind.currentIndex())
    props.strength.setValue(0.6)
    props.end.setValue(0.8)
    assert control.control.kind is ControlKind.CANNY
    assert control.control.strength == 0.6 and control.control.end == 0.8
    summary = dock.model.data(dock.model.index_of(control, 1))
    assert "canny" in summary and "0.60" in summary and "80%" in summary
    props.from_image.click()
    pixels = control.surface.read(doc.rect)
    assert pixels[..., 3].min() == 255  # opaque, document-sized
    edges = pixels[..., 0] > 128
    assert edges[95:105, 100:200].any() and not edges[:80].any()  # white edges at the bar
    assert doc.history.undo_label.startswith("Control From Image")
    window.actions["undo"].trigger()
    assert control.surface.is_empty()


def test_thumbnail_samples_the_layer(window) -> None:  # noqa: ANN001
    doc = window.document
    paint = doc.find("Paint")
    block = np.zeros((120, 160, 4), np.uint8)
    block[..., 0] = 255
    block[..., 3] = 255
    editing.put_pixels(doc, paint, block, 0, 0)
    thumb = thumbnail_array(paint, doc, 40)
    assert thumb.shape[1] == 40 and thumb.shape[0] == 30
    assert thumb[0, 0, 3] == 255 and thumb[0, 0, 0] == 255
    assert thumb[-1, -1, 3] == 0


def test_renaming_a_layer(window) -> None:  # noqa: ANN001
    model = window.layers_dock.model
    layer = window.document.find("Paint")
    assert model.setData(model.index_of(layer), "Sky", Qt.ItemDataRole.EditRole)
    assert layer.name == "Sky"
    assert not model.setData(model.index_of(layer), "   ", Qt.ItemDataRole.EditRole)
    window.actions["undo"].trigger()
    assert layer.name == "Paint"


def test_refused_edits_become_status_messages(window) -> None:  # noqa: ANN001
    doc = window.document
    messages: list[str] = []
    window.layers_dock.message.connect(messages.append)
    paint = doc.find("Paint")
    region = window.layers_dock.add_layer(Role.REGION)
    editing.remove_layer(doc, paint)  # the properties panel still shows a layer …
    window.layers_dock.properties.show_layer(doc, paint)  # … that is no longer in the document
    window.layers_dock.properties.opacity.setValue(30)
    assert messages and "opacity" in messages[-1]
    assert paint.opacity == 1.0
    assert region.parent is doc.root

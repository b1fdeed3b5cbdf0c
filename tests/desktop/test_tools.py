"""Tools driven through the window: mask and region brushes, fill, picker, selections,
move; shortcuts and the brush panel binding."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from qtinput import mouse_drag
from sfumato.canvas import editing
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.desktop.tool_settings import ToolKind


def _w(window, x: float, y: float) -> tuple[float, float]:  # noqa: ANN001
    p = window.view.map_from_document(x, y)
    return p.x(), p.y()


def _drag_doc(window, points, **kw) -> None:  # noqa: ANN001, ANN003
    mouse_drag(window.view, [_w(window, x, y) for x, y in points], **kw)


def test_mask_brush_creates_an_inpaint_mask_layer_and_paints_it(window) -> None:  # noqa: ANN001
    doc = window.document
    window.actions["tool_mask"].trigger()
    assert window.tool_settings.tool is ToolKind.MASK
    window.tool_settings.update(size=20, hardness=1.0)
    _drag_doc(window, [(100, 100), (200, 100)])
    masks = list(doc.pixel_layers(Role.INPAINT_MASK))
    assert len(masks) == 1 and doc.active is masks[0]
    alpha = masks[0].surface.read(doc.rect)[..., 3]
    assert alpha[100, 150] == 255 and not alpha[150:].any()
    # The paint layer is untouched.
    assert doc.find("Paint").surface.is_empty()
    # A second stroke goes into the same mask; Ctrl erases.
    _drag_doc(window, [(150, 80), (150, 120)], modifiers=Qt.KeyboardModifier.ControlModifier)
    assert len(list(doc.pixel_layers(Role.INPAINT_MASK))) == 1
    assert masks[0].surface.read(doc.rect)[100, 150, 3] == 0
    assert masks[0].surface.read(doc.rect)[100, 110, 3] == 255
    # The mask shows on the canvas as a tint over white.
    window.view.repaint()
    tinted = window.view.grab().toImage().pixelColor(window.view.map_from_document(110, 100).toPoint())
    assert (tinted.red(), tinted.green(), tinted.blue()) != (255, 255, 255)


def test_region_brush_paints_the_active_region_or_adds_one(window) -> None:  # noqa: ANN001
    doc = window.document
    window.actions["tool_region"].trigger()
    window.tool_settings.update(size=16, hardness=1.0)
    _drag_doc(window, [(50, 50), (120, 50)])
    regions = list(doc.pixel_layers(Role.REGION))
    assert len(regions) == 1 and doc.active is regions[0]
    assert regions[0].surface.read(doc.rect)[50, 80, 3] == 255
    _drag_doc(window, [(50, 150), (120, 150)])  # the active region again
    assert len(list(doc.pixel_layers(Role.REGION))) == 1
    assert regions[0].surface.read(doc.rect)[150, 80, 3] == 255


def test_fill_fills_the_clicked_area_with_the_brush_colour(window) -> None:  # noqa: ANN001
    doc = window.document
    paint = doc.find("Paint")
    # A closed square outline on the paint layer.
    ring = np.zeros((100, 100, 4), np.uint8)
    ring[:4] = ring[-4:] = ring[:, :4] = ring[:, -4:] = (0, 0, 0, 255)
    editing.put_pixels(doc, paint, ring, 100, 60)
    window.tool_settings.update(color=(10, 120, 240), opacity=1.0)
    window.actions["tool_fill"].trigger()
    _drag_doc(window, [(150, 110)])
    pixels = paint.surface.read(doc.rect)
    assert tuple(pixels[110, 150]) == (10, 120, 240, 255)
    assert tuple(pixels[60, 100]) == (0, 0, 0, 255)  # the outline stays
    assert pixels[20, 20, 3] == 0  # outside the outline: not filled
    window.actions["undo"].trigger()
    assert paint.surface.read(doc.rect)[110, 150, 3] == 0


def test_picker_takes_the_colour_under_the_pointer(window) -> None:  # noqa: ANN001
    doc = window.document
    block = np.zeros((50, 50, 4), np.uint8)
    block[...] = (200, 100, 50, 255)
    editing.put_pixels(doc, doc.find("Paint"), block, 20, 20)
    window.actions["tool_picker"].trigger()
    _drag_doc(window, [(40, 40)])
    assert window.tool_settings.values.color == (200, 100, 50)
    assert window.brush_panel.color_button._color.red() == 200


def test_rectangle_selection_and_its_modifiers(window) -> None:  # noqa: ANN001
    doc = window.document
    window.actions["tool_rect-select"].trigger()
    _drag_doc(window, [(40, 30), (100, 60), (140, 90)])
    assert doc.selection is not None
    sel = doc.selection
    assert sel[50, 60] == pytest.approx(1.0) and sel[10, 10] == 0 and sel[95, 150] == 0
    assert not window.selection_overlay.path.isEmpty()
    # Shift adds a second rectangle.
    _drag_doc(window, [(200, 150), (260, 200)], modifiers=Qt.KeyboardModifier.ShiftModifier)
    assert doc.selection[60, 60] == pytest.approx(1.0) and doc.selection[170, 230] == pytest.approx(1.0)
    # Alt subtracts.
    _drag_doc(window, [(30, 20), (150, 100)], modifiers=Qt.KeyboardModifier.AltModifier)
    assert doc.selection[60, 60] == 0 and doc.selection[170, 230] == pytest.approx(1.0)
    # A click deselects.
    _drag_doc(window, [(10, 10)])
    assert doc.selection is None
    assert window.selection_overlay.path.isEmpty()
    window.actions["undo"].trigger()
    assert doc.selection is not None


def test_brush_is_clipped_by_the_selection(window) -> None:  # noqa: ANN001
    doc = window.document
    window.actions["tool_ellipse-select"].trigger()
    _drag_doc(window, [(100, 50), (200, 150)])
    assert doc.selection is not None and doc.selection[100, 150] == pytest.approx(1.0)
    assert doc.selection[52, 102] < 0.5  # the corner of the box is outside the ellipse
    window.actions["tool_brush"].trigger()
    window.tool_settings.update(size=20, hardness=1.0)
    _drag_doc(window, [(20, 100), (300, 100)])
    alpha = doc.find("Paint").surface.read(doc.rect)[..., 3]
    assert alpha[100, 150] == 255 and alpha[100, 40] == 0 and alpha[100, 260] == 0


def test_lasso_selection(window) -> None:  # noqa: ANN001
    doc = window.document
    window.actions["tool_lasso"].trigger()
    _drag_doc(window, [(50, 50), (200, 50), (200, 200), (50, 200), (50, 60)])
    assert doc.selection is not None
    assert doc.selection[120, 120] == pytest.approx(1.0) and doc.selection[10, 10] == 0


def test_select_menu_actions(window) -> None:  # noqa: ANN001
    doc = window.document
    window.actions["select_all"].trigger()
    assert doc.selection is not None and doc.selection.min() == 1.0
    window.actions["deselect"].trigger()
    assert doc.selection is None


def test_move_tool_drags_the_layer_as_one_undo_step(window) -> None:  # noqa: ANN001
    doc = window.document
    paint = doc.find("Paint")
    block = np.full((20, 20, 4), 255, np.uint8)
    editing.put_pixels(doc, paint, block, 10, 10)
    steps = doc.history.undo_count
    window.actions["tool_move"].trigger()
    _drag_doc(window, [(15, 15), (40, 30), (65, 45)])
    assert (paint.x, paint.y) == (50, 30)
    assert doc.history.undo_count == steps + 1
    window.actions["undo"].trigger()
    assert (paint.x, paint.y) == (0, 0)


def test_locked_layer_refuses_paint_with_a_message(window) -> None:  # noqa: ANN001
    doc = window.document
    paint = doc.find("Paint")
    editing.set_property(doc, paint, "locked", True)
    messages: list[str] = []
    window.tools.message.connect(messages.append)
    _drag_doc(window, [(40, 40), (80, 40)])
    assert paint.surface.is_empty()
    assert messages and "locked" in messages[0]


def test_tool_shortcuts_and_size_keys(window, qtbot) -> None:  # noqa: ANN001
    from PySide6.QtTest import QTest

    window.view.setFocus()
    for key, kind in ((Qt.Key.Key_E, ToolKind.ERASER), (Qt.Key.Key_M, ToolKind.MASK),
                      (Qt.Key.Key_I, ToolKind.PICKER), (Qt.Key.Key_B, ToolKind.BRUSH)):
        QTest.keyClick(window, key)
        assert window.tool_settings.tool is kind
    size = window.tool_settings.values.size
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.tool_settings.values.size > size
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert window.tool_settings.values.size < size


def test_brush_panel_binds_both_ways(window) -> None:  # noqa: ANN001
    panel = window.brush_panel
    settings = window.tool_settings
    settings.update(size=57, hardness=0.25)
    assert panel.size_row.spin.value() == 57
    # The size slider is logarithmic: 57 px sits past the middle of 1..1000 px.
    assert 0.5 < panel.size_row.slider.value() / panel.size_row.slider.maximum() < 0.65
    panel.size_row.slider.setValue(panel.size_row.slider.maximum())
    assert settings.values.size == 1000
    assert panel.hardness_row.spin.value() == 25
    panel.opacity_row.slider.setValue(40)
    assert settings.values.opacity == pytest.approx(0.4)
    assert panel.opacity_row.spin.value() == 40
    panel.flow_row.spin.setValue(10)
    assert settings.values.flow == pytest.approx(0.1)


def test_tool_settings_are_remembered(window, config_dir) -> None:  # noqa: ANN001
    from sfumato.desktop.main_window import MainWindow

    window.tool_settings.update(size=33, color=(1, 2, 3))
    window.tool_settings.set_tool(ToolKind.LASSO)
    window.close()
    second = MainWindow()
    try:
        assert second.tool_settings.values.size == 33
        assert second.tool_settings.values.color == (1, 2, 3)
        assert second.tool_settings.tool is ToolKind.LASSO
    finally:
        second.close()
        second.deleteLater()


def test_undo_is_refused_politely_while_nothing_to_undo(window) -> None:  # noqa: ANN001
    assert not window.actions["undo"].isEnabled()
    window.undo()  # no crash, no change
    assert isinstance(window.document.active, PixelLayer)


def test_typing_in_a_prompt_does_not_trigger_tool_shortcuts(window) -> None:  # noqa: ANN001
    from PySide6.QtTest import QTest

    dock = window.layers_dock
    region = dock.add_layer(Role.REGION)
    edit = dock.properties.prompt
    edit.setFocus()
    QTest.keyClicks(edit, "big barn")
    assert region.prompt == "big barn"
    assert window.tool_settings.tool is ToolKind.BRUSH  # "b" did not switch tools
    # One burst of typing is one undo step.
    window.actions["undo"].trigger()
    assert region.prompt == ""


def test_masks_and_regions_tint_can_be_hidden(window) -> None:  # noqa: ANN001
    doc = window.document
    window.actions["tool_mask"].trigger()
    window.tool_settings.update(size=30, hardness=1.0)
    _drag_doc(window, [(100, 100), (200, 100)])
    view = window.view
    point = view.map_from_document(150, 100).toPoint()
    view.repaint()
    tinted = view.grab().toImage().pixelColor(point)
    assert (tinted.red(), tinted.green(), tinted.blue()) != (255, 255, 255)
    window.actions["show_ai_layers"].trigger()
    view.repaint()
    plain = view.grab().toImage().pixelColor(point)
    assert (plain.red(), plain.green(), plain.blue()) == (255, 255, 255)
    assert next(doc.pixel_layers(Role.INPAINT_MASK)).visible  # only the display changed


def test_colour_square_picks_and_follows_the_brush_colour(window) -> None:  # noqa: ANN001
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest

    square = window.brush_panel.color_square
    window.brush_panel.show()
    window.tool_settings.update(color=(255, 0, 0))
    assert square.color() == (255, 0, 0)
    # Top-left of the square is white; bottom is black.
    QTest.mouseClick(square, Qt.MouseButton.LeftButton, pos=QPoint(1, 1))
    assert min(window.tool_settings.values.color) >= 250
    QTest.mouseClick(square, Qt.MouseButton.LeftButton, pos=QPoint(5, square.height() - 1))
    assert max(window.tool_settings.values.color) <= 5
    # The hue strip keeps saturation/value and changes hue: full red → some other hue.
    window.tool_settings.update(color=(255, 0, 0))
    strip_x = square.width() - 5
    QTest.mouseClick(square, Qt.MouseButton.LeftButton, pos=QPoint(strip_x, square.height() // 3))
    r, g, b = window.tool_settings.values.color
    assert max(r, g, b) >= 250 and (g > 200 or b > 200)

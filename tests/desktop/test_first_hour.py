"""What a new painter hits in the first hour (issue 17), driven through the window.

``on_screen`` reads what the window system shows (the window's backing store after the
event loop ran), not ``QWidget.grab()``, which repaints on demand and so cannot see a
canvas that forgot to repaint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtWidgets import QApplication, QFileDialog
from sfumato.canvas import editing
from sfumato.canvas.files.ora import save_ora
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop.files import qimage_to_rgba


def on_screen(window: Any) -> np.ndarray:
    """The canvas view's pixels as the screen shows them, after pending events ran."""
    QApplication.processEvents()
    view = window.view
    top = view.mapTo(window, view.rect().topLeft())
    shot = window.screen().grabWindow(window.winId(), top.x(), top.y(), view.width(), view.height())
    return qimage_to_rgba(shot.toImage())


def centre(pixels: np.ndarray) -> tuple[int, ...]:
    h, w = pixels.shape[:2]
    return tuple(int(v) for v in pixels[h // 2, w // 2, :3])


def solid_ora(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> Path:
    doc = Document(width, height)
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[..., :3] = rgb
    pixels[..., 3] = 255
    doc.root.append(PixelLayer("Background", TiledSurface.from_array(pixels)))
    save_ora(doc, path)
    return path


def _open(window: Any, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    window.actions["open"].trigger()


# -- 1. a document replaced by one of the same size is drawn at once ----------------------
def test_opening_a_document_of_the_same_size_shows_its_pixels(window: Any, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    size = (window.document.width, window.document.height)
    assert centre(on_screen(window)) == (255, 255, 255)  # the white test document
    for name, rgb in (("blue", (0, 0, 255)), ("red", (255, 0, 0))):
        _open(window, monkeypatch, solid_ora(tmp_path / f"{name}.ora", *size, rgb))
        assert (window.document.width, window.document.height) == size
        assert centre(on_screen(window)) == rgb, f"{name}: the canvas still shows the previous document"


def test_new_document_of_the_same_size_is_drawn(window: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _open(window, monkeypatch, solid_ora(tmp_path / "blue.ora", 1024, 1024, (0, 0, 255)))
    assert centre(on_screen(window)) == (0, 0, 255)
    from sfumato.desktop.new_document_dialog import NewDocumentSpec

    monkeypatch.setattr(
        "sfumato.desktop.new_document_dialog.ask_new_document",
        lambda *a, **k: NewDocumentSpec(1024, 1024, True),
    )
    window.actions["new"].trigger()
    assert centre(on_screen(window)) == (255, 255, 255)


def test_dropping_a_document_of_the_same_size_shows_it(window: Any, tmp_path: Path) -> None:
    size = (window.document.width, window.document.height)
    path = solid_ora(tmp_path / "green.ora", *size, (0, 255, 0))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    assert window.files.handle_mime(mime)
    assert window.document.find("Background") is not None
    assert centre(on_screen(window)) == (0, 255, 0)


def test_fit_always_repaints(window: Any) -> None:
    painted: list[int] = []
    window.view.add_overlay(lambda _painter, _view: painted.append(1))
    on_screen(window)
    painted.clear()
    window.actions["fit"].trigger()  # the view is fitted already: the viewport stays the same
    on_screen(window)
    assert painted, "Ctrl+0 did not repaint the canvas"


# -- 9. the Steps box takes what the engine takes, and says its range otherwise --------------
def test_steps_box_accepts_200_and_explains_its_range(window: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from sfumato.desktop.generation_dock import GenerationDock
    from sfumato.inference.request import MAX_STEPS

    dock = GenerationDock()
    qtbot.addWidget(dock)
    dock.set_document(window.document)
    dock.show()
    box = dock.steps
    refused: list[str] = []
    box.refused.connect(refused.append)
    box.setFocus()
    box.selectAll()
    QTest.keyClicks(box, "200")
    QTest.keyClick(box, Qt.Key.Key_Return)
    assert box.value() == 200 and window.document.recipe.steps == 200
    assert not refused
    box.selectAll()
    QTest.keyClicks(box, "2000")  # over the range: the last key is refused, with the range said
    assert box.text() == "200"
    assert refused and set(refused) == {f"Steps go from 1 to {MAX_STEPS}."}


# -- 9. layer shortcuts as in Krita, a shortcuts sheet, no key bound twice ------------------
def test_layer_shortcuts_and_the_shortcuts_sheet(window: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.shortcuts_sheet import shortcut_rows

    controller = install_generation(window, lambda: None)  # the generation actions too; never run
    try:
        doc = window.document
        view = window.view
        view.setFocus()
        count = len(doc.root.children)
        ctrl, shift = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
        QTest.keyClick(view, Qt.Key.Key_N, ctrl | shift)
        assert len(doc.root.children) == count + 1 and doc.active.name.startswith("Paint")
        QTest.keyClick(view, Qt.Key.Key_J, ctrl)
        assert len(doc.root.children) == count + 2
        QTest.keyClick(view, Qt.Key.Key_E, ctrl)  # merge the duplicate down
        assert len(doc.root.children) == count + 1
        assert window.actions["export"].shortcut().toString() == "Ctrl+Shift+E"

        rows = shortcut_rows(window.menus)
        listed = {(menu, text): keys for menu, text, keys in rows}
        assert listed[("Layer", "Duplicate Layer")] == "Ctrl+J"
        assert listed[("Layer", "Merge Down")] == "Ctrl+E"
        assert listed[("Generate", "Accept Result")] == "Shift+Return, Shift+Enter"
        assert listed[("Generate", "Live")] == "Ctrl+L"
        assert listed[("Generate", "Apply Live Frame")] == "Return, Enter"
        assert ("Help", "Keyboard Shortcuts") in listed
        keys = [k.toString() for a in set(window.actions.values()) for k in a.shortcuts()]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        assert not twice, f"keys bound to two actions: {twice}"
    finally:
        controller.shutdown()


# -- 9. adding a region layer neither squeezes the layer list nor moves the canvas -----------
def test_region_and_control_layers_keep_the_list_and_the_canvas_in_place(window: Any) -> None:
    from sfumato.canvas.model.layers import Role
    from sfumato.desktop.layer_model import THUMB
    from sfumato.desktop.layers_dock import MIN_ROWS

    window.resize(1280, 820)
    QApplication.processEvents()
    dock = window.layers_dock
    view_before = window.view.geometry()
    tree_before = dock.tree.height()
    assert tree_before >= MIN_ROWS * THUMB
    for role in (Role.REGION, Role.CONTROL, Role.PAINT):
        dock.add_layer(role)
        QApplication.processEvents()
        assert window.view.geometry() == view_before, f"a {role.value} layer moved the canvas"
        assert dock.tree.height() == tree_before, f"a {role.value} layer squeezed the layer list"


# -- 10. settings reach the disk when they change, not only at exit --------------------------
def test_settings_are_on_disk_half_a_second_after_a_change(window: Any, qtbot: Any) -> None:
    """What a ``kill -9`` leaves: the INI file as written, read without Qt's cache."""
    import configparser
    import json

    from sfumato.desktop.main_window import MainWindow

    path = Path(window.settings.qsettings.fileName())

    def on_disk() -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path)
        return parser

    window.tool_settings.update(size=77.0, color=(12, 34, 56))
    editing.set_recipe(window.document, prompt="a lighthouse at dusk", steps=33)

    def saved() -> bool:
        disk = on_disk()
        if not disk.has_section("tools") or not disk.has_section("generation"):
            return False
        recipe = json.loads(disk["generation"]["last_recipe"].strip('"').replace('\\"', '"'))
        return float(disk["tools"]["size"]) == 77.0 and recipe.get("prompt") == "a lighthouse at dusk"

    qtbot.waitUntil(saved, timeout=3000)
    disk = on_disk()
    assert disk["tools"]["color"].strip('"') == "12,34,56"

    # The next start (no clean exit in between) has them back.
    again = MainWindow()
    try:
        assert again.tool_settings.values.size == 77.0 and again.tool_settings.values.color == (12, 34, 56)
        assert again.document.recipe.prompt == "a lighthouse at dusk" and again.document.recipe.steps == 33
        assert again.document.recipe.seed is None
    finally:
        again.document.history.mark_clean()
        again.close()
        again.deleteLater()


# -- 5. a region shows what it generates from, and the main prompt can be kept out ----------
def test_region_shows_its_resulting_prompt_and_the_switch_keeps_the_main_prompt_out(window: Any) -> None:
    from sfumato.canvas.model.layers import Role

    doc = window.document
    editing.set_recipe(doc, prompt="a yellow star on a blue background")
    dock = window.layers_dock
    region = dock.add_layer(Role.REGION)
    props = dock.properties
    props.prompt.setPlainText("a green triangle")
    assert region.prompt == "a green triangle"
    assert props.effective.isVisibleTo(props) and props.include_prompt.isVisibleTo(props)
    assert props.include_prompt.isChecked()
    assert props.effective.text() == "“a green triangle, a yellow star on a blue background”"

    props.include_prompt.click()
    assert doc.recipe.regions_include_prompt is False
    assert props.effective.text() == "“a green triangle”"
    editing.set_recipe(doc, prompt="a blue background")  # the main prompt changes elsewhere
    assert props.effective.text() == "“a green triangle”"
    props.include_prompt.click()
    assert props.effective.text() == "“a green triangle, a blue background”"
    window.actions["undo"].trigger()
    assert doc.recipe.regions_include_prompt is False and not props.include_prompt.isChecked()

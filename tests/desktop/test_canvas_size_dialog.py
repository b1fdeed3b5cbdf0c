"""Image → Canvas Size… and Image Size…: the dialogs keep their fields in step, and what
they return becomes one undo step of the window's document."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox
from sfumato.canvas.edits.canvas_size import Anchor, CanvasMargins, Filter
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop import canvas_size_dialog
from sfumato.desktop.canvas_size_dialog import (
    CanvasSizeDialog,
    CanvasSizeSpec,
    ImageSizeDialog,
    ImageSizeSpec,
)


# -- Canvas Size ---------------------------------------------------------------------------
def test_size_and_anchor_set_the_sides(qtbot) -> None:  # noqa: ANN001
    dialog = CanvasSizeDialog(320, 240)
    qtbot.addWidget(dialog)
    assert dialog.anchor() is Anchor.CENTER and dialog.margins() == CanvasMargins()
    dialog.width_box.setValue(421)
    assert dialog.margins() == CanvasMargins(50, 0, 51, 0)
    qtbot.mouseClick(dialog.anchor_buttons[Anchor.BOTTOM_RIGHT], Qt.MouseButton.LeftButton)
    assert dialog.anchor() is Anchor.BOTTOM_RIGHT
    assert dialog.margins() == CanvasMargins(101, 0, 0, 0)
    dialog.height_box.setValue(200)
    assert dialog.margins() == CanvasMargins(101, -40, 0, 0)
    assert "320 × 240 px → 421 × 200 px" in dialog.summary.text()


def test_every_anchor_button_places_the_picture(qtbot) -> None:  # noqa: ANN001
    dialog = CanvasSizeDialog(100, 100)
    qtbot.addWidget(dialog)
    dialog.width_box.setValue(140)
    dialog.height_box.setValue(60)
    seen = {}
    for anchor, button in dialog.anchor_buttons.items():
        button.click()
        seen[anchor] = (dialog.margins().left, dialog.margins().top)
        assert button.text() == "●"
        assert sum(b.text() not in ("", "●") for b in dialog.anchor_buttons.values()) in (3, 5, 8)
    assert seen == {
        Anchor.TOP_LEFT: (0, 0), Anchor.TOP: (20, 0), Anchor.TOP_RIGHT: (40, 0),
        Anchor.LEFT: (0, -20), Anchor.CENTER: (20, -20), Anchor.RIGHT: (40, -20),
        Anchor.BOTTOM_LEFT: (0, -40), Anchor.BOTTOM: (20, -40), Anchor.BOTTOM_RIGHT: (40, -40),
    }


def test_sides_set_the_size_and_an_impossible_canvas_disables_ok(qtbot) -> None:  # noqa: ANN001
    dialog = CanvasSizeDialog(320, 240)
    qtbot.addWidget(dialog)
    dialog.side_boxes["left"].setValue(10)
    dialog.side_boxes["bottom"].setValue(-40)
    assert (dialog.width_box.value(), dialog.height_box.value()) == (330, 200)
    assert dialog.spec() == CanvasSizeSpec(CanvasMargins(10, 0, 0, -40), False)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok.isEnabled()
    dialog.side_boxes["right"].setValue(-400)
    assert not ok.isEnabled() and "not a possible canvas" in dialog.summary.text()
    dialog.side_boxes["right"].setValue(0)
    dialog.crop_layers.setChecked(True)
    assert ok.isEnabled() and dialog.spec().crop_layers


def test_the_canvas_size_dialog_looks_right(qtbot, tmp_path) -> None:  # noqa: ANN001
    dialog = CanvasSizeDialog(3000, 2000)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.width_box.setValue(3600)
    image = dialog.grab().toImage()
    assert image.width() > 200 and image.height() > 250
    image.save(str(tmp_path / "canvas_size.png"))
    dialog.close()


# -- Image Size ----------------------------------------------------------------------------
def test_keep_aspect_follows_either_side(qtbot) -> None:  # noqa: ANN001
    dialog = ImageSizeDialog(300, 200)
    qtbot.addWidget(dialog)
    dialog.width_box.setValue(600)
    assert dialog.height_box.value() == 400
    dialog.height_box.setValue(50)
    assert dialog.width_box.value() == 75
    dialog.keep_aspect.setChecked(False)
    dialog.width_box.setValue(90)
    assert dialog.height_box.value() == 50
    dialog.filter_box.setCurrentIndex(dialog.filter_box.findData(Filter.AREA))
    assert dialog.spec() == ImageSizeSpec(90, 50, Filter.AREA)
    assert "30%" in dialog.summary.text()


def test_the_image_size_dialog_looks_right(qtbot, tmp_path) -> None:  # noqa: ANN001
    dialog = ImageSizeDialog(3000, 2000)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.grab().toImage().save(str(tmp_path / "image_size.png"))
    dialog.close()


# -- the window ----------------------------------------------------------------------------
def test_the_image_menu_lists_both(window) -> None:  # noqa: ANN001
    from sfumato.desktop.shortcuts_sheet import shortcut_rows

    texts = [a.text() for a in window.menus["image"].actions()]
    assert texts == ["&Canvas Size…", "&Image Size…"]
    listed = {(menu, text): keys for menu, text, keys in shortcut_rows(window.menus)}
    assert listed[("Image", "Canvas Size…")] == "Ctrl+Alt+C"


def test_canvas_size_from_the_menu_is_one_undo_step(window, monkeypatch) -> None:  # noqa: ANN001
    doc = window.document
    paint = doc.find("Paint")
    assert isinstance(paint, PixelLayer)
    asked = []

    def ask(_parent, d):  # noqa: ANN001, ANN202
        asked.append((d.width, d.height))
        return CanvasSizeSpec(CanvasMargins(40, 10, -20, 0))

    monkeypatch.setattr(canvas_size_dialog, "ask_canvas_size", ask)
    window.actions["canvas_size"].trigger()
    assert asked == [(320, 240)]
    assert (doc.width, doc.height) == (340, 250)
    assert (paint.x, paint.y) == (40, 10)
    assert window._size_label.text() == "340 × 250"
    assert doc.history.undo_labels() == ["Canvas Size"]
    assert window.actions["undo"].text() == "&Undo Canvas Size"
    window.actions["undo"].trigger()
    assert (doc.width, doc.height, paint.x, paint.y) == (320, 240, 0, 0)
    assert window._size_label.text() == "320 × 240"


def test_image_size_from_the_menu_resamples(window, monkeypatch) -> None:  # noqa: ANN001
    doc = window.document
    monkeypatch.setattr(canvas_size_dialog, "ask_image_size", lambda _p, _d: ImageSizeSpec(640, 480, Filter.AREA))
    window.actions["image_size"].trigger()
    assert (doc.width, doc.height) == (640, 480)
    background = doc.find("Background")
    assert isinstance(background, PixelLayer)
    assert (background.surface.read(background.document_bounds()) == 255).all()
    assert background.document_bounds().w == 640
    assert doc.history.undo_labels() == ["Image Size"]


def test_cancel_and_no_change_leave_no_step(window, monkeypatch) -> None:  # noqa: ANN001
    doc = window.document
    monkeypatch.setattr(canvas_size_dialog, "ask_canvas_size", lambda _p, _d: None)
    monkeypatch.setattr(canvas_size_dialog, "ask_image_size", lambda _p, d: ImageSizeSpec(d.width, d.height))
    window.actions["canvas_size"].trigger()
    window.actions["image_size"].trigger()
    assert not doc.history.can_undo and (doc.width, doc.height) == (320, 240)


def test_a_refused_change_says_why(window, monkeypatch) -> None:  # noqa: ANN001
    doc = window.document
    monkeypatch.setattr(canvas_size_dialog, "ask_canvas_size",
                        lambda _p, _d: CanvasSizeSpec(CanvasMargins(left=-400)))
    window.actions["canvas_size"].trigger()
    assert "Cannot change the canvas size" in window.statusBar().currentMessage()
    assert not doc.history.can_undo


def test_the_real_dialog_accepted_becomes_the_command(window) -> None:  # noqa: ANN001
    """The modal dialog itself: fill it while it runs, press OK."""
    doc = window.document
    doc.find("Paint").surface = TiledSurface.from_array(np.full((4, 4, 4), 200, np.uint8))  # type: ignore[union-attr]
    done = []

    def fill() -> None:
        dialog = next(w for w in QApplication.topLevelWidgets()
                      if isinstance(w, CanvasSizeDialog) and w.isVisible())
        dialog.anchor_buttons[Anchor.TOP_LEFT].click()
        dialog.width_box.setValue(400)
        dialog.crop_layers.setChecked(True)
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
        done.append(True)

    QTimer.singleShot(0, fill)
    window.actions["canvas_size"].trigger()
    assert done and (doc.width, doc.height) == (400, 240)
    assert doc.find("Paint").x == 0  # type: ignore[union-attr]
    doc.undo()
    assert (doc.width, doc.height) == (320, 240)

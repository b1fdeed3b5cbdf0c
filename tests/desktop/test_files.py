"""Files through the window: save/open round trip, import, export, paste, drops, recent
files, the unsaved-changes prompt, and a fast start without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox
from qtinput import mouse_drag
from sfumato.canvas import editing
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, Role


def _save_dialog(monkeypatch, path: Path) -> None:  # noqa: ANN001
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(path), "")))


def _open_dialog(monkeypatch, path: Path) -> None:  # noqa: ANN001
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))


def _stroke(window) -> None:  # noqa: ANN001
    a = window.view.map_from_document(40, 40)
    b = window.view.map_from_document(200, 120)
    mouse_drag(window.view, [(a.x(), a.y()), (b.x(), b.y())])


def test_save_and_open_round_trip(window, monkeypatch, tmp_path, prompts) -> None:  # noqa: ANN001
    doc = window.document
    _stroke(window)
    region = window.layers_dock.add_layer(Role.REGION)
    window.layers_dock.model.setData(window.layers_dock.model.index_of(region, 1), "a lighthouse")
    assert window.isWindowModified()
    target = tmp_path / "scene.ora"
    _save_dialog(monkeypatch, target)
    window.actions["save"].trigger()  # untitled: asks for a name
    assert target.exists()
    assert doc.history.is_clean and not window.isWindowModified()
    assert "scene.ora" in window.windowTitle()
    saved_paint = doc.find("Paint").surface.read(doc.rect)

    # Change it, then open the saved file: the prompt offers to save; discard.
    _stroke(window)
    _open_dialog(monkeypatch, target)
    window.actions["open"].trigger()
    assert ("question", "Unsaved changes") in prompts
    reopened = window.document
    assert reopened is not doc
    assert [layer.name for layer in reopened.layers()] == [layer.name for layer in doc.layers()]
    assert np.array_equal(reopened.find("Paint").surface.read(reopened.rect), saved_paint)
    region2 = next(reopened.pixel_layers(Role.REGION))
    assert region2.prompt == "a lighthouse"
    assert reopened.history.is_clean and not reopened.history.can_undo
    # The canvas and the dock follow the new document.
    assert window.view.document is reopened
    assert window.layers_dock.model.document is reopened
    # It is a recent file now.
    assert target.resolve() in window.settings.recent_files()
    assert window.menus["recent"].actions()[0].text() == "scene.ora"
    # Ctrl+S now saves in place without asking.
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: pytest.fail("asked")))
    _stroke(window)
    window.actions["save"].trigger()
    assert reopened.history.is_clean


def test_open_failure_keeps_the_document_and_explains(window, monkeypatch, tmp_path, prompts) -> None:  # noqa: ANN001
    bad = tmp_path / "broken.ora"
    bad.write_bytes(b"not a zip at all")
    doc = window.document
    _open_dialog(monkeypatch, bad)
    window.actions["open"].trigger()
    assert window.document is doc
    assert ("critical", "Could not open file") in prompts


def test_import_image_as_layer_and_undo(window, monkeypatch, tmp_path) -> None:  # noqa: ANN001
    doc = window.document
    picture = np.zeros((30, 40, 3), np.uint8)
    picture[..., 1] = 200
    path = tmp_path / "leaf.webp"
    Image.fromarray(picture).save(path, lossless=True)
    _open_dialog(monkeypatch, path)
    window.actions["import"].trigger()
    layer = doc.find("leaf")
    assert isinstance(layer, PixelLayer) and doc.active is layer
    assert tuple(layer.surface.read(doc.rect)[10, 10]) == (0, 200, 0, 255)
    window.actions["undo"].trigger()
    assert doc.find("leaf") is None


def test_export_png_with_parameters(window, monkeypatch, tmp_path) -> None:  # noqa: ANN001
    """A painted picture exports without ``parameters`` (no recipe made it); with a
    generated layer visible, its full record goes in, as ``sfumato render`` writes it."""
    from sfumato.canvas.files.parameters import format_parameters
    from sfumato.canvas.model.tiles import TiledSurface

    doc = window.document
    editing.set_recipe(doc, prompt="a quiet harbour", seed=7, steps=20)
    _stroke(window)
    out = tmp_path / "out.png"
    _save_dialog(monkeypatch, out)
    window.actions["export"].trigger()
    with Image.open(out) as image:
        assert image.size == (doc.width, doc.height)
        assert "parameters" not in image.text, "nothing was generated"
        pixels = np.asarray(image.convert("RGBA"))
    assert pixels[40, 40, 0] < 100  # the dark stroke
    assert tuple(pixels[200, 300]) == (255, 255, 255, 255)

    generation = {"mode": "txt2img", "prompt": "a quiet harbour", "negative": "fog", "model": "/m/dreamy.safetensors",
                  "sampler": "euler_a", "steps": 20, "cfg": 6.5, "seed": 7, "width": 64, "height": 48}
    result = PixelLayer("Generate: a quiet harbour", TiledSurface.from_array(np.full((48, 64, 4), 90, np.uint8)),
                        role=Role.GENERATED, generation=generation)
    editing.add_layer(doc, result, index=0, activate=False)
    window.actions["export"].trigger()
    with Image.open(out) as image:
        text = image.text.get("parameters", "")
    assert text == format_parameters(generation)
    for part in ("a quiet harbour", "Negative prompt: fog", "Steps: 20", "Sampler: Euler a", "CFG scale: 6.5",
                 "Seed: 7", "Size: 64x48", "Model: dreamy"):
        assert part in text, (part, text)
    editing.set_property(doc, result, "visible", False)
    window.actions["export"].trigger()
    with Image.open(out) as image:
        assert "parameters" not in image.text, "a hidden result is not the picture"


def test_paste_image_from_clipboard(window) -> None:  # noqa: ANN001
    doc = window.document
    image = QImage(16, 8, QImage.Format.Format_RGBA8888)
    image.fill(QColor(0x33, 0x66, 0xCC))
    QGuiApplication.clipboard().setImage(image)
    window.actions["paste"].trigger()
    layer = doc.active
    assert isinstance(layer, PixelLayer) and layer.name.startswith("Pasted")
    px = layer.surface.read(doc.rect)
    assert tuple(px[4, 8]) == (0x33, 0x66, 0xCC, 0xFF) and px[20, 20, 3] == 0


def test_dropping_image_files_adds_layers(window, tmp_path) -> None:  # noqa: ANN001
    paths = []
    for name, value in (("one", 10), ("two", 240)):
        path = tmp_path / f"{name}.png"
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
        paths.append(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    assert window.files.accepts_mime(mime)
    assert window.files.handle_mime(mime)
    assert window.document.find("one") is not None and window.document.find("two") is not None


def test_closing_with_unsaved_changes_asks(window, monkeypatch) -> None:  # noqa: ANN001
    _stroke(window)
    asked: list[str] = []

    def answer(button: QMessageBox.StandardButton):  # noqa: ANN202
        def ask(_parent, title, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            asked.append(title)
            return button

        return staticmethod(ask)

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    assert not window.close()
    assert window.isVisible() and asked == ["Unsaved changes"]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Discard))
    assert window.close()
    assert not window.isVisible()


def test_closing_clean_document_does_not_ask(window, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: pytest.fail("asked")))
    assert window.close()


def test_save_choice_in_the_prompt_saves(window, monkeypatch, tmp_path) -> None:  # noqa: ANN001
    _stroke(window)
    target = tmp_path / "kept.ora"
    _save_dialog(monkeypatch, target)
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Save))
    assert window.close()
    assert target.exists()


def test_window_starts_without_torch_and_opens_a_file(tmp_path) -> None:
    """The window appears (first paint) without importing torch/diffusers, and a file
    given on the command line is opened."""
    from sfumato.canvas.files.ora import save_ora
    from windowdocs import small_document

    path = tmp_path / "start.ora"
    save_ora(small_document(), path)
    script = textwrap.dedent(
        f"""
        import sys
        from PySide6.QtCore import QTimer
        from sfumato.desktop.app import create_application, create_window
        app = create_application([])
        window = create_window(__import__("pathlib").Path({str(path)!r}))
        window.first_paint.connect(app.quit)
        window.show()
        QTimer.singleShot(10000, lambda: app.exit(3))
        code = app.exec()
        heavy = [m for m in ("torch", "diffusers", "transformers") if m in sys.modules]
        print("HEAVY", heavy, "LAYERS", [l.name for l in window.document.layers()])
        window.document.history.mark_clean()
        window.close()
        sys.exit(code)
        """
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SFUMATO_CONFIG_DIR=str(tmp_path / "cfg"))
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
    assert "'Paint', 'Background'" in result.stdout


def test_sfumato_command_opens_the_window_on_a_file_and_exits_cleanly(tmp_path) -> None:
    """``sfumato picture.ora`` runs the window (desktop ``main``) and returns its exit code;
    a missing file is refused with code 2 before any window appears."""
    from sfumato.canvas.files.ora import save_ora
    from windowdocs import small_document

    path = tmp_path / "entry.ora"
    save_ora(small_document(), path)
    script = textwrap.dedent(
        f"""
        import sys
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from sfumato.desktop import app as desktop_app

        def finish():
            window = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "sfumatoMainWindow")
            print("OPEN", window.files.path.name, [l.name for l in window.document.layers()], flush=True)
            window.close()
            QApplication.instance().quit()

        real = desktop_app.create_application
        def patched(argv=None):
            app = real(argv)
            QTimer.singleShot(300, finish)
            return app
        desktop_app.create_application = patched
        from sfumato.cli import main
        sys.exit(main([{str(path)!r}]))
        """
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SFUMATO_CONFIG_DIR=str(tmp_path / "cfg"))
    ok = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "OPEN entry.ora ['Paint', 'Background']" in ok.stdout

    from sfumato.desktop.app import main

    assert main([str(tmp_path / "missing.ora")]) == 2


def test_window_layout_is_remembered(window, config_dir) -> None:  # noqa: ANN001
    from sfumato.desktop.main_window import MainWindow

    window.docks["brush"].hide()
    window.resize(700, 500)  # at least the minimum size the docks allow
    size = (window.width(), window.height())
    window.close()
    again = MainWindow()
    try:
        again.show()
        assert again.docks["brush"].isHidden()
        assert not again.docks["layers"].isHidden()
        assert (again.width(), again.height()) == size
    finally:
        again.close()
        again.deleteLater()


def test_export_layered_psd(window, monkeypatch, tmp_path) -> None:  # noqa: ANN001
    from sfumato.canvas.files.psd import load_psd

    _stroke(window)
    out = tmp_path / "layers.psd"
    _save_dialog(monkeypatch, out)
    window.actions["export"].trigger()
    back = load_psd(out)
    assert [layer.name for layer in back.layers()] == ["Paint", "Background"]


def test_new_document_asks_for_a_size(window, monkeypatch) -> None:  # noqa: ANN001
    from sfumato.desktop import new_document_dialog
    from sfumato.desktop.new_document_dialog import NewDocumentDialog, NewDocumentSpec

    monkeypatch.setattr(new_document_dialog, "ask_new_document",
                        lambda _parent: NewDocumentSpec(640, 480, white_background=False))
    window.actions["new"].trigger()
    doc = window.document
    assert (doc.width, doc.height) == (640, 480)
    assert [layer.name for layer in doc.layers()] == ["Paint"]
    monkeypatch.setattr(new_document_dialog, "ask_new_document", lambda _parent: None)
    window.actions["new"].trigger()
    assert window.document is doc  # cancelled
    # The dialog's presets fill in the size.
    dialog = NewDocumentDialog()
    dialog.preset.setCurrentIndex(dialog.preset.findData("512x512"))
    dialog.preset.activated.emit(dialog.preset.currentIndex())
    assert dialog.spec() == NewDocumentSpec(512, 512, True)
    dialog.width_box.setValue(700)
    assert dialog.preset.currentData() is None  # custom
    dialog.deleteLater()


def test_copy_inside_the_selection_then_paste_as_a_layer(window) -> None:  # noqa: ANN001
    doc = window.document
    block = np.zeros((40, 40, 4), np.uint8)
    block[...] = (10, 200, 30, 255)
    editing.put_pixels(doc, doc.find("Paint"), block, 100, 100)
    editing.set_selection(doc, None)
    from sfumato.canvas.paint.selection import select_rect

    select_rect(doc, 90, 90, 120, 130)
    window.actions["copy"].trigger()
    image = QGuiApplication.clipboard().image()
    assert (image.width(), image.height()) == (30, 40)
    window.actions["paste"].trigger()
    pasted = doc.active
    px = pasted.surface.read(Rect(0, 0, 30, 40))
    assert tuple(px[15, 15]) == (10, 200, 30, 255)  # inside the block
    assert px[5, 5, 3] == 0  # selected but empty
    window.actions["copy_merged"].trigger()
    merged = QGuiApplication.clipboard().image()
    assert merged.pixelColor(5, 5).red() == 255  # the white background is in the merge

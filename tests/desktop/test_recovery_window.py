"""Killed mid-painting, the window offers the strokes back on the next start (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication
from sfumato.canvas import editing
from sfumato.canvas.render.composite import flatten

TESTS = Path(__file__).resolve().parents[1]
STROKE_ROWS = {100: (220, 30, 30), 200: (30, 200, 30), 300: (30, 30, 220)}


def _paint_and_kill(tmp_path: Path, recovery: Path) -> str:
    env = dict(os.environ, SFUMATO_RECOVERY_DIR=str(recovery), SFUMATO_CONFIG_DIR=str(tmp_path / "child-config"),
               QT_QPA_PLATFORM="offscreen", PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(TESTS / "windowcrash.py")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), f"child said {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    finally:
        proc.kill()  # SIGKILL: no close event, no cleanup
        proc.wait(timeout=30)
    return line


def _colour_at(doc, row: int) -> tuple[int, ...]:  # noqa: ANN001
    return tuple(int(v) for v in flatten(doc)[row, 300, :3])


def test_killed_window_offers_the_strokes_back_and_undo_steps_through_them(
    tmp_path: Path, monkeypatch, qtbot, prompts  # noqa: ANN001
) -> None:
    recovery = tmp_path / "recovery"
    said = _paint_and_kill(tmp_path, recovery)
    assert said.split(maxsplit=1)[1].strip() == "Brush Stroke / Brush Stroke / Brush Stroke"

    monkeypatch.setenv("SFUMATO_RECOVERY_DIR", str(recovery))
    from sfumato.desktop.app import create_application, start_window
    from sfumato.desktop.recovery_dialog import RecoveryDialog

    create_application([])
    window = start_window()  # what `sfumato` does on start
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.findChild(RecoveryDialog) is not None, timeout=30_000)
    dialog = window.findChild(RecoveryDialog)
    assert dialog.isVisible()
    text = dialog.list.item(0).text()
    assert "Untitled" in text and "never saved" in text and "3 change(s)" in text
    assert not dialog.list.item(0).icon().isNull()  # the thumbnail
    before = window.document
    dialog.recover_button.click()
    qtbot.waitUntil(lambda: window.document is not before, timeout=30_000)

    doc = window.document
    for row, colour in STROKE_ROWS.items():
        assert _colour_at(doc, row) == colour
    assert window.isWindowModified()  # recovered work is unsaved work
    assert window.files.path is None
    # on screen, not only in the model
    window.view.repaint()
    QApplication.processEvents()
    image = window.view.grab().toImage()
    p = window.view.map_from_document(300, 300)
    shown = image.pixelColor(int(p.x()), int(p.y()))
    assert (shown.red(), shown.green(), shown.blue()) == STROKE_ROWS[300]

    # undo steps back through the strokes, newest first
    assert doc.history.undo_labels() == ["Brush Stroke"] * 3
    window.actions["undo"].trigger()
    assert _colour_at(doc, 300) == (255, 255, 255) and _colour_at(doc, 200) == STROKE_ROWS[200]
    window.actions["undo"].trigger()
    window.actions["undo"].trigger()
    assert all(_colour_at(doc, row) == (255, 255, 255) for row in STROKE_ROWS)
    assert not doc.history.can_undo
    # the old journal is gone; the window's own (in use) is not offered
    from sfumato.canvas.recovery.recovery import list_recoverable

    assert list_recoverable(recovery) == []
    assert len([p for p in recovery.iterdir()]) == 1
    doc.history.mark_clean()
    window.close()
    assert not any(recovery.iterdir())  # a clean close removes the journal


def test_a_failed_save_keeps_the_document_unsaved_and_the_journal_going(
    window, tmp_path: Path, monkeypatch, prompts  # noqa: ANN001
) -> None:
    import errno

    import numpy as np
    from sfumato.canvas.files import ora
    from sfumato.canvas.files.file_errors import SaveError
    from sfumato.canvas.recovery.journal_format import read_journal

    doc = window.document
    layer = next(doc.pixel_layers())
    editing.put_pixels(doc, layer, np.full((20, 20, 4), 200, np.uint8))
    path = tmp_path / "fox.ora"
    window.files.set_path(path)
    assert window.files.save()
    good = path.read_bytes()

    def full_disk(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise SaveError(f"{path}: cannot write: [Errno {errno.ENOSPC}] No space left on device")

    monkeypatch.setattr(ora, "save_ora", full_disk)
    editing.put_pixels(doc, layer, np.full((20, 20, 4), 90, np.uint8), 40, 40)
    assert not window.files.save()
    assert ("critical", "Could not save") in prompts
    assert window.isWindowModified() and not doc.history.is_clean
    assert path.read_bytes() == good
    journal = window.journals.journal
    editing.put_pixels(doc, layer, np.full((20, 20, 4), 10, np.uint8), 80, 80)  # painting goes on …
    assert journal.flush()
    records = read_journal(journal.folder / "journal.sfj").records
    assert [r.header["a"] for r in records][-2:] == ["execute", "execute"]  # … and is journaled


def test_the_banner_shows_while_the_journal_cannot_be_written(window, qtbot, monkeypatch) -> None:  # noqa: ANN001
    import errno

    import numpy as np
    from sfumato.canvas.recovery import journal as journal_module

    real = journal_module._encode
    full = [True]

    def encode(*args):  # noqa: ANN002, ANN202
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(journal_module, "_encode", encode)
    doc = window.document
    layer = next(doc.pixel_layers())
    banner = window.journals.banner
    assert not banner.isVisible()
    editing.put_pixels(doc, layer, np.full((10, 10, 4), 50, np.uint8))
    qtbot.waitUntil(banner.isVisible, timeout=10_000)
    assert "No space left on device" in banner.text()
    editing.put_pixels(doc, layer, np.full((10, 10, 4), 60, np.uint8), 20, 20)  # painting goes on
    assert window.document is doc and doc.history.undo_count == 2
    full[0] = False
    editing.put_pixels(doc, layer, np.full((10, 10, 4), 70, np.uint8), 40, 40)
    qtbot.waitUntil(lambda: not banner.isVisible(), timeout=10_000)


def test_two_windows_of_one_file_keep_two_journals(window, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    from sfumato.canvas.files.ora import save_ora
    from sfumato.desktop.main_window import MainWindow

    path = tmp_path / "shared.ora"
    save_ora(window.document, path)
    window.files.open_path(path)
    other = MainWindow()
    qtbot.addWidget(other)
    other.files.open_path(path)
    mine, theirs = window.journals.journal, other.journals.journal
    assert mine is not None and theirs is not None and mine.folder != theirs.folder
    other.close()
    assert not theirs.folder.exists() and mine.folder.exists()

"""Fixtures for the window tests: a main window on a small document, closed and deleted
after each test, and a guard that fails a test which leaves top-level widgets open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from windowdocs import small_document


@pytest.fixture(autouse=True)
def _no_leaked_windows(qapp: QApplication) -> Iterator[None]:
    before = {id(w) for w in QApplication.topLevelWidgets() if w.isVisible()}
    yield
    QApplication.processEvents()
    leaked = [
        w for w in QApplication.topLevelWidgets()
        if w.isVisible() and id(w) not in before and not w.inherits("QMenu")
    ]
    for w in leaked:
        w.close()
    assert not leaked, f"test left windows open: {[type(w).__name__ for w in leaked]}"


@pytest.fixture(autouse=True)
def prompts(monkeypatch) -> list[tuple[str, str]]:  # noqa: ANN001
    """Replaces QMessageBox's static prompts so no modal dialog can block a test.

    Autouse: a modal prompt in any test (an unsaved-changes question when qtbot closes a
    window at teardown, say) would otherwise block the whole run forever.

    Records ``(kind, title)``; ``question`` answers Discard unless a test patches it.
    """
    calls: list[tuple[str, str]] = []

    def recorder(kind: str, answer: QMessageBox.StandardButton):  # noqa: ANN202
        def ask(_parent, title, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            calls.append((kind, str(title)))
            return answer

        return staticmethod(ask)

    monkeypatch.setattr(QMessageBox, "question", recorder("question", QMessageBox.StandardButton.Discard))
    for kind in ("critical", "warning", "information"):
        monkeypatch.setattr(QMessageBox, kind, recorder(kind, QMessageBox.StandardButton.Ok))
    return calls


@pytest.fixture
def config_dir(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """A fresh settings folder per test (QSettings is re-pointed at it)."""
    path = tmp_path / "config"
    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(path))
    return path


@pytest.fixture
def window(qapp, prompts, config_dir):  # noqa: ANN001, ANN201
    """A shown MainWindow on :func:`small_document` with fresh settings; closed and
    deleted afterwards."""
    from PySide6.QtTest import QTest
    from sfumato.desktop.app import create_application
    from sfumato.desktop.main_window import MainWindow

    create_application([])
    win = MainWindow()
    win.resize(900, 640)
    win.set_document(small_document())
    win.show()
    QTest.qWaitForWindowExposed(win)
    win.view.fit()
    yield win
    if win.document is not None:
        win.document.history.mark_clean()
    win.close()
    win.deleteLater()
    QApplication.processEvents()

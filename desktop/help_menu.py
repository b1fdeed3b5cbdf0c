"""The Help menu's commands: the keyboard shortcuts sheet, the user guide (the README that
comes with the program), About."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMenu, QMessageBox, QWidget


def user_guide_path() -> Path | None:
    """The README next to the installed package (a source or editable install), if any."""
    here = Path(__file__).resolve().parent
    for folder in (here.parent, here.parent.parent):
        candidate = folder / "README.md"
        if candidate.is_file():
            return candidate
    return None


def show_shortcuts(menus: dict[str, QMenu], parent: QWidget) -> None:
    """A sheet of every shortcut, read from the menus (so it cannot go stale)."""
    from sfumato.desktop.shortcuts_sheet import ShortcutsSheet

    ShortcutsSheet(menus, parent).exec()


def open_user_guide(show_message: Callable[[str], None]) -> bool:
    """Open the README in the desktop's viewer; False (with a message) when this
    installation has none or nothing can show it."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    local = user_guide_path()
    if local is None:
        show_message("This installation has no README.md; Help ▸ Keyboard Shortcuts lists the keys.")
        return False
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(local))):
        return True
    show_message(f"Nothing on this computer opens {local}; it is a Markdown text file.")
    return False


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About Sfumato",
        "Sfumato — a painting program in which a diffusion model is one more brush.",
    )

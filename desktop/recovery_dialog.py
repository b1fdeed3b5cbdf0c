"""The recovery dialog: documents a crash left unsaved, offered back on the next start.

Lists each recoverable journal (:func:`sfumato.canvas.recovery.recovery.list_recoverable`) with
its name, original path, time of the last change, a thumbnail and how many changes it
holds since the last save, replayed once here so what is offered is what will open.
**Recover** opens the chosen one in the window — modified, with its original path, the
file itself untouched until the artist saves — and then removes its old journal;
**Discard** removes it; **Later** keeps everything for the next start (or File ▸ Recover
Unsaved Work).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sfumato.canvas.recovery.recovery import (
    Recovered,
    RecoveryEntry,
    discard,
    list_recoverable,
    recover,
)
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.config import recovery_dir

#: What Recover calls with the chosen document and its original path (the window's
#: ``adopt_recovered``; passed in, so this dialog does not import the window).
Adopt = Callable[[Recovered, Path | None], None]

log = logging.getLogger(__name__)

THUMB = 96


class RecoveryDialog(QDialog):
    def __init__(self, entries: list[RecoveryEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recoveryDialog")
        self.setWindowTitle("Recover unsaved work")
        self.entries = list(entries)
        self.recovered: dict[str, Recovered] = {}
        self.errors: dict[str, str] = {}
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Sfumato was not closed properly. These documents have changes that were never "
            "saved; recovering one opens it as it was at its last change."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.setMinimumWidth(640)
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setWordWrap(True)  # long paths wrap instead of scrolling sideways
        layout.addWidget(self.list)
        for entry in self.entries:
            self.list.addItem(self._item(entry))
        self.list.setCurrentRow(0)
        buttons = QDialogButtonBox()
        self.recover_button = QPushButton("&Recover")
        self.discard_button = QPushButton("&Discard")
        self.later_button = QPushButton("&Later")
        buttons.addButton(self.recover_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(self.later_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.recover_button.clicked.connect(self.accept)
        self.later_button.clicked.connect(self.reject)
        self.discard_button.clicked.connect(self._discard)
        self.list.currentRowChanged.connect(self._update_buttons)
        layout.addWidget(buttons)
        self._update_buttons()

    def _item(self, entry: RecoveryEntry) -> QListWidgetItem:
        since = " since it was saved" if entry.path else ""
        lines = [entry.name, entry.path or "never saved",
                 f"last change {entry.when} · {entry.changes_since_save} change(s){since}"]
        icon = QIcon()
        try:
            if entry.error is not None:
                raise ValueError(entry.error)
            got = recover(entry.folder)
            self.recovered[entry.id] = got
            icon = QIcon(QPixmap.fromImage(_thumbnail(got)))
            if got.torn:
                lines.append("The crash cut the last change short; it is left out.")
        except (OSError, ValueError) as exc:  # JournalFormatError is a ValueError
            self.errors[entry.id] = str(exc)
            lines.append(f"Cannot be recovered: {exc}")
        item = QListWidgetItem(icon, "\n".join(lines))
        item.setData(Qt.ItemDataRole.UserRole, entry.id)
        return item

    def current(self) -> RecoveryEntry | None:
        row = self.list.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _update_buttons(self) -> None:
        entry = self.current()
        self.recover_button.setEnabled(entry is not None and entry.id in self.recovered)
        self.discard_button.setEnabled(entry is not None)

    def _discard(self) -> None:
        entry = self.current()
        if entry is None:
            return
        discard(entry.folder)
        row = self.list.currentRow()
        self.entries.pop(row)
        self.list.takeItem(row)
        if not self.entries:
            self.reject()
        self._update_buttons()


def _thumbnail(got: Recovered) -> QImage:
    rgba = flatten(got.doc, background=(255, 255, 255, 255))
    h, w = rgba.shape[:2]
    image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    return image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def offer_recovery(window: QWidget, adopt: Adopt, *, when_empty: bool = False) -> RecoveryDialog | None:
    """Show the dialog (window-modal, not blocking) if anything can be recovered.

    Recover calls ``adopt`` (the window's ``adopt_recovered``). With
    ``when_empty`` (the menu command), say so when there is nothing.
    """
    entries = list_recoverable(recovery_dir())
    if not entries:
        if when_empty:
            QMessageBox.information(window, "Recover unsaved work", "There is nothing to recover.")
        return None
    dialog = RecoveryDialog(entries, window)

    def finished(result: int) -> None:
        entry = dialog.current()
        if result == QDialog.DialogCode.Accepted and entry is not None and entry.id in dialog.recovered:
            got = dialog.recovered[entry.id]
            adopt(got, Path(got.path) if got.path else None)
            discard(entry.folder)  # its changes are in the new document's journal now
        dialog.deleteLater()

    dialog.finished.connect(finished)
    dialog.open()
    return dialog

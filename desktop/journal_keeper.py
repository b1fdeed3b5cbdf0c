"""Keeps a recovery journal for the window's document, and a banner when it cannot.

Every document the window shows gets its own journal (:class:`sfumato.canvas.recovery.journal.Journal`)
in a fresh folder under :func:`sfumato.vocabulary.config.recovery_dir` — two windows of one file never
share one. Replacing the document (New, Open, a recovered one) or closing the window
after the unsaved-changes question ends the journal and removes it; a save compacts it.
If the journal cannot be written (a full disk) a red banner in the status bar says so
until it can again; painting is never stopped.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QStatusBar
from sfumato.canvas.model.document import Document
from sfumato.canvas.recovery.journal import Journal
from sfumato.vocabulary.config import recovery_dir

log = logging.getLogger(__name__)


class JournalKeeper(QObject):
    """Owns the journal of one window's current document."""

    #: the journal's state: an error text, or None when it is written (any thread -> GUI)
    status = Signal(object)

    def __init__(self, status_bar: QStatusBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.journal: Journal | None = None
        self.banner = QLabel("")
        self.banner.setObjectName("journalBanner")
        self.banner.setStyleSheet("QLabel { background: #b3261e; color: white; padding: 2px 8px; }")
        self.banner.setVisible(False)
        status_bar.addPermanentWidget(self.banner)
        self.status.connect(self._show_status)

    def follow(self, doc: Document, path: Path | None) -> None:
        """Journal ``doc`` from now on; the previous document's journal is removed."""
        self.end()
        folder = recovery_dir() / uuid.uuid4().hex[:12]
        try:
            self.journal = Journal(doc, folder, name=_name(path), path=path, on_status=self.status.emit)
        except (OSError, RuntimeError) as exc:
            self.journal = None
            self._show_status(f"{exc}")

    def set_source(self, path: Path | None) -> None:
        if self.journal is not None:
            self.journal.set_source(path, _name(path))

    def saved(self, path: Path) -> None:
        if self.journal is not None:
            self.journal.saved(path, _name(path))

    def end(self) -> None:
        """The document was closed on purpose: its journal goes."""
        if self.journal is not None:
            self.journal.discard()
            self.journal = None
        self._show_status(None)

    def _show_status(self, error: object) -> None:
        if error is None:
            self.banner.setVisible(False)
            return
        self.banner.setText(
            f"Recovery journal cannot be written: {error}. Painting goes on, but a crash now "
            "would lose the changes since the last save — free some disk space, or save."
        )
        self.banner.setVisible(True)


def _name(path: Path | None) -> str:
    return path.name if path is not None else "Untitled"

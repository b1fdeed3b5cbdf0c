"""The History dock: thumbnails of past results with the parameters that made them.

Each finished generation adds one entry per batch image (newest first, at most
:data:`MAX_ENTRIES`; the oldest are dropped). An entry keeps the
:class:`~sfumato.desktop.staging.StagedResult` it came from, so it can be staged again
(re-apply) on the canvas over its original area, even after it was discarded. Actions:
re-apply (double-click too), reuse seed (fixes the Generation dock's seed), copy prompt.

History lives for the session only (results are large; accepted ones are in the
document as layers that carry their parameters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sfumato.desktop.staging import THUMB_SIDE, StagedResult

log = logging.getLogger(__name__)

__all__ = ["HistoryDock", "HistoryEntry", "describe"]

MAX_ENTRIES = 100
THUMB = THUMB_SIDE


@dataclass(frozen=True, eq=False)
class HistoryEntry:
    """One image of a past result: ``result.images[index]``."""

    result: StagedResult
    index: int

    @property
    def seed(self) -> int:
        return self.result.seed(self.index)

    @property
    def prompt(self) -> str:
        return self.result.plan.request.prompt


def describe(entry: HistoryEntry) -> str:
    """A1111-style parameter text for a history entry (the tooltip and the details line)."""
    req = entry.result.plan.request
    parts = [
        f"{entry.result.plan.mode.label}",
        f"Steps: {req.steps}",
        f"Sampler: {req.sampler.label}",
        f"CFG scale: {req.cfg:g}",
        f"Seed: {entry.seed}",
        f"Size: {req.width}x{req.height}",
    ]
    if req.init is not None:
        parts.append(f"Strength: {req.init.strength:g}")
    parts.append(f"Model: {req.model.source}")
    text = req.prompt or "(no prompt)"
    if req.negative:
        text += f"\nNegative prompt: {req.negative}"
    seconds = entry.result.metadata.get("seconds")
    if seconds is not None:
        parts.append(f"Time: {float(seconds):.1f} s")
    return text + "\n" + ", ".join(parts)



class HistoryDock(QWidget):
    """See the module docstring. Signals: ``reapply(StagedResult, index)``,
    ``reuse_seed(int)``."""

    reapply = Signal(object, int)
    reuse_seed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("historyDock")
        self.setWindowTitle("History")
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setSpacing(4)
        self.list.setWordWrap(True)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.empty = QLabel("Results appear here after you generate.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.reapply_button = QPushButton("Re-apply")
        self.reapply_button.setToolTip("Stage this result on the canvas again")
        self.seed_button = QPushButton("Reuse seed")
        self.seed_button.setToolTip("Generate with this result's seed")
        self.copy_button = QPushButton("Copy prompt")
        row = QHBoxLayout()
        for b in (self.reapply_button, self.seed_button, self.copy_button):
            row.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.details)
        layout.addLayout(row)
        self._entries: list[HistoryEntry] = []

        self.list.currentRowChanged.connect(self._selected)
        self.list.itemDoubleClicked.connect(lambda _item: self.reapply_selected())
        self.reapply_button.clicked.connect(lambda _=False: self.reapply_selected())
        self.seed_button.clicked.connect(lambda _=False: self.reuse_selected_seed())
        self.copy_button.clicked.connect(lambda _=False: self.copy_selected_prompt())
        self._selected(-1)

    @property
    def entries(self) -> list[HistoryEntry]:
        """Newest first."""
        return list(self._entries)

    def add_result(self, result: StagedResult) -> None:
        """Add every image of ``result`` (newest first)."""
        for index in reversed(range(len(result.images))):
            entry = HistoryEntry(result, index)
            self._entries.insert(0, entry)
            item = QListWidgetItem(QIcon(QPixmap.fromImage(result.thumbnail(index))), f"seed {entry.seed}")
            item.setToolTip(describe(entry))
            self.list.insertItem(0, item)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.pop()
            self.list.takeItem(self.list.count() - 1)
        self.list.setCurrentRow(0)

    def clear(self) -> None:
        self._entries.clear()
        self.list.clear()
        self._selected(-1)

    def current(self) -> HistoryEntry | None:
        row = self.list.currentRow()
        return self._entries[row] if 0 <= row < len(self._entries) else None

    def _selected(self, row: int) -> None:
        entry = self._entries[row] if 0 <= row < len(self._entries) else None
        self.details.setText(describe(entry) if entry is not None else "")
        for b in (self.reapply_button, self.seed_button, self.copy_button):
            b.setEnabled(entry is not None)
        self.empty.setVisible(not self._entries)

    def reapply_selected(self) -> None:
        entry = self.current()
        if entry is not None:
            self.reapply.emit(entry.result, entry.index)

    def reuse_selected_seed(self) -> None:
        entry = self.current()
        if entry is not None:
            self.reuse_seed.emit(entry.seed)

    def copy_selected_prompt(self) -> None:
        entry = self.current()
        if entry is not None:
            QGuiApplication.clipboard().setText(entry.prompt)

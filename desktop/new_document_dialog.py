"""The New Document dialog: canvas size (with presets sized for the models) and background."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QSpinBox,
    QWidget,
)
from sfumato.canvas.model.document import MAX_SIDE

log = logging.getLogger(__name__)

PRESETS: tuple[tuple[str, int, int], ...] = (
    ("Square 1024 × 1024 (SDXL)", 1024, 1024),
    ("Square 512 × 512 (SD 1.x)", 512, 512),
    ("Landscape 1216 × 832 (SDXL)", 1216, 832),
    ("Portrait 832 × 1216 (SDXL)", 832, 1216),
    ("Landscape 768 × 512 (SD 1.x)", 768, 512),
    ("Full HD 1920 × 1080", 1920, 1080),
)


@dataclass(frozen=True)
class NewDocumentSpec:
    width: int
    height: int
    white_background: bool = True


class NewDocumentDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New document")
        self.preset = QComboBox()
        self.preset.addItem("Custom", None)
        for label, w, h in PRESETS:
            self.preset.addItem(label, f"{w}x{h}")
        self.width_box = QSpinBox()
        self.height_box = QSpinBox()
        for box in (self.width_box, self.height_box):
            box.setRange(8, MAX_SIDE)
            box.setSuffix(" px")
            box.setValue(1024)
        self.preset.setCurrentIndex(1)
        self.background = QCheckBox("White background layer")
        self.background.setChecked(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Size", self.preset)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("", self.background)
        form.addRow(buttons)
        self.preset.activated.connect(self._apply_preset)
        self.width_box.valueChanged.connect(self._custom)
        self.height_box.valueChanged.connect(self._custom)

    def _apply_preset(self, _index: int) -> None:
        key = self.preset.currentData()
        if key:
            size = [int(v) for v in str(key).split("x")]
            self.width_box.blockSignals(True)
            self.height_box.blockSignals(True)
            self.width_box.setValue(size[0])
            self.height_box.setValue(size[1])
            self.width_box.blockSignals(False)
            self.height_box.blockSignals(False)

    def _custom(self, _value: int) -> None:
        index = self.preset.findData(f"{self.width_box.value()}x{self.height_box.value()}")
        self.preset.setCurrentIndex(max(0, index))

    def spec(self) -> NewDocumentSpec:
        return NewDocumentSpec(
            self.width_box.value(), self.height_box.value(), self.background.isChecked()
        )


def ask_new_document(parent: QWidget | None) -> NewDocumentSpec | None:
    """Show the dialog; the chosen spec, or None when cancelled (tests replace this)."""
    dialog = NewDocumentDialog(parent)
    try:
        if dialog.exec() == QDialog.DialogCode.Accepted:
            return dialog.spec()
        return None
    finally:
        dialog.deleteLater()

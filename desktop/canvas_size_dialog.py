"""Image → Canvas Size and Image → Image Size: the two dialogs and the window commands.

The dialogs only collect numbers; the changes are the canvas's commands
(:class:`~sfumato.canvas.edits.canvas_size.ResizeCanvas`,
:class:`~sfumato.canvas.edits.canvas_size.ScaleImage`), each run through the document's
history as one undo step. :func:`change_canvas_size` and :func:`change_image_size` are
what the window's actions call; tests replace :func:`ask_canvas_size` and
:func:`ask_image_size` to skip the modal dialogs.

Canvas Size keeps two views of one change in step: a new width and height placed by an
anchor (the 3 × 3 grid: where the picture stays), and the amount added to (positive) or
cut from (negative) each side. Editing the size or choosing an anchor recomputes the
sides; editing a side recomputes the size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from sfumato.canvas.edits.canvas_size import Anchor, CanvasMargins, Filter, ResizeCanvas, ScaleImage
from sfumato.canvas.edits.commands import EditError
from sfumato.canvas.model.document import MAX_SIDE, Document
from sfumato.canvas.model.history import HistoryBusyError

log = logging.getLogger(__name__)

#: What a button of the anchor grid shows, by its place relative to the chosen anchor
#: (columns, rows): a dot on the anchor, arrows pointing where the canvas changes.
_ARROWS = {
    (0, 0): "●", (-1, -1): "↖", (0, -1): "↑", (1, -1): "↗", (-1, 0): "←", (1, 0): "→",
    (-1, 1): "↙", (0, 1): "↓", (1, 1): "↘",
}


@dataclass(frozen=True)
class CanvasSizeSpec:
    margins: CanvasMargins
    crop_layers: bool = False


@dataclass(frozen=True)
class ImageSizeSpec:
    width: int
    height: int
    kind: Filter = Filter.LANCZOS


def _size_box(value: int, minimum: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, MAX_SIDE)
    box.setSuffix(" px")
    box.setValue(value)
    box.setAccelerated(True)
    return box


class _Blocked:
    """Push values into widgets without their signals firing (``with _Blocked(a, b):``)."""

    def __init__(self, *widgets: QWidget) -> None:
        self.widgets = widgets

    def __enter__(self) -> None:
        for w in self.widgets:
            w.blockSignals(True)

    def __exit__(self, *_exc: object) -> None:
        for w in self.widgets:
            w.blockSignals(False)


class CanvasSizeDialog(QDialog):
    """New width/height and anchor, or per-side amounts; "crop layers" erases what ends
    outside (otherwise kept beyond the canvas's edge)."""

    def __init__(self, width: int, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Canvas Size")
        self.old_size = (width, height)
        self.width_box = _size_box(width)
        self.height_box = _size_box(height)
        self.anchor_buttons: dict[Anchor, QToolButton] = {}
        self.anchor_group = QButtonGroup(self)
        self.anchor_group.setExclusive(True)
        grid = QGridLayout()
        grid.setSpacing(2)
        for r, row in enumerate(Anchor.grid()):
            for c, anchor in enumerate(row):
                button = QToolButton()
                button.setObjectName(f"anchor_{anchor.value}")
                button.setToolTip(f"Keep the picture at the {anchor.value.replace('-', ' ')}")
                button.setCheckable(True)
                button.setFixedSize(28, 28)
                self.anchor_group.addButton(button)
                self.anchor_buttons[anchor] = button
                grid.addWidget(button, r, c)
        grid.setContentsMargins(0, 0, 0, 0)
        anchor_box = QWidget()
        anchor_box.setLayout(grid)
        anchor_box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.anchor_buttons[Anchor.CENTER].setChecked(True)

        self.side_boxes: dict[str, QSpinBox] = {}
        for side in ("left", "top", "right", "bottom"):
            box = QSpinBox()
            box.setRange(-MAX_SIDE, MAX_SIDE)
            box.setSuffix(" px")
            box.setToolTip("Pixels added to this side; negative crops")
            self.side_boxes[side] = box
        sides = QGroupBox("Add to each side (negative crops)")
        sides_form = QFormLayout(sides)
        for side, box in self.side_boxes.items():
            sides_form.addRow(side.title(), box)

        self.crop_layers = QCheckBox("Delete pixels outside the new canvas")
        self.crop_layers.setToolTip(
            "Off: pixels cut off by a crop are kept beyond the canvas's edge (grow it again "
            "or move the layer to see them). On: they are erased from every layer."
        )
        self.summary = QLabel()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        size_form = QFormLayout()
        size_form.addRow("Width", self.width_box)
        size_form.addRow("Height", self.height_box)
        size_form.addRow("Anchor", anchor_box)
        layout = QVBoxLayout(self)
        layout.addLayout(size_form)
        layout.addWidget(sides)
        layout.addWidget(self.crop_layers)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)

        self.width_box.valueChanged.connect(self._size_edited)
        self.height_box.valueChanged.connect(self._size_edited)
        self.anchor_group.buttonClicked.connect(lambda _b: self._size_edited())
        for box in self.side_boxes.values():
            box.valueChanged.connect(self._side_edited)
        self._size_edited()

    def anchor(self) -> Anchor:
        return next((a for a, b in self.anchor_buttons.items() if b.isChecked()), Anchor.CENTER)

    def set_anchor(self, anchor: Anchor) -> None:
        self.anchor_buttons[anchor].setChecked(True)
        self._size_edited()

    def margins(self) -> CanvasMargins:
        b = self.side_boxes
        return CanvasMargins(b["left"].value(), b["top"].value(), b["right"].value(), b["bottom"].value())

    def spec(self) -> CanvasSizeSpec:
        return CanvasSizeSpec(self.margins(), self.crop_layers.isChecked())

    def _show_anchor(self) -> None:
        chosen = self.anchor()
        for anchor, button in self.anchor_buttons.items():
            dx = round(2 * (anchor.fx - chosen.fx))
            dy = round(2 * (anchor.fy - chosen.fy))
            button.setText(_ARROWS.get((dx, dy), ""))

    def _size_edited(self, *_args: object) -> None:
        self._show_anchor()
        m = CanvasMargins.for_size(*self.old_size, self.width_box.value(), self.height_box.value(), self.anchor())
        boxes = self.side_boxes
        with _Blocked(*boxes.values()):
            for side in boxes:
                boxes[side].setValue(getattr(m, side))
        self._show_summary()

    def _side_edited(self, *_args: object) -> None:
        width, height = self.margins().new_size(*self.old_size)
        with _Blocked(self.width_box, self.height_box):
            self.width_box.setValue(max(1, width))
            self.height_box.setValue(max(1, height))
        self._show_summary()

    def _show_summary(self) -> None:
        w, h = self.margins().new_size(*self.old_size)
        ok = 0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE
        old_w, old_h = self.old_size
        self.summary.setText(
            f"{old_w} × {old_h} px → {w} × {h} px" if ok else f"{w} × {h} px is not a possible canvas"
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)


class ImageSizeDialog(QDialog):
    """New width/height (aspect kept by default) and the resampling filter."""

    def __init__(self, width: int, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Image Size")
        self.old_size = (width, height)
        self.width_box = _size_box(width)
        self.height_box = _size_box(height)
        self.keep_aspect = QCheckBox("Keep aspect ratio")
        self.keep_aspect.setChecked(True)
        self.filter_box = QComboBox()
        for kind in Filter:
            self.filter_box.addItem(kind.label, kind)
        self.filter_box.setToolTip(
            "Lanczos: sharp, best for photos and paintings; may ring a little at hard edges.\n"
            "Area: averages the pixels each new pixel covers; smooth, never rings (enlarging repeats pixels)."
        )
        self.summary = QLabel()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("", self.keep_aspect)
        form.addRow("Resampling", self.filter_box)
        form.addRow(self.summary)
        form.addRow(buttons)
        self.width_box.valueChanged.connect(self._width_edited)
        self.height_box.valueChanged.connect(self._height_edited)
        self._show_summary()

    def _width_edited(self, value: int) -> None:
        if self.keep_aspect.isChecked():
            w, h = self.old_size
            with _Blocked(self.height_box):
                self.height_box.setValue(max(1, min(MAX_SIDE, round(value * h / w))))
        self._show_summary()

    def _height_edited(self, value: int) -> None:
        if self.keep_aspect.isChecked():
            w, h = self.old_size
            with _Blocked(self.width_box):
                self.width_box.setValue(max(1, min(MAX_SIDE, round(value * w / h))))
        self._show_summary()

    def _show_summary(self) -> None:
        w, h = self.old_size
        nw, nh = self.width_box.value(), self.height_box.value()
        self.summary.setText(f"{w} × {h} px → {nw} × {nh} px ({100 * nw / w:.4g}% × {100 * nh / h:.4g}%)")

    def spec(self) -> ImageSizeSpec:
        kind = self.filter_box.currentData()
        return ImageSizeSpec(self.width_box.value(), self.height_box.value(),
                             kind if isinstance(kind, Filter) else Filter.LANCZOS)


def ask_canvas_size(parent: QWidget | None, doc: Document) -> CanvasSizeSpec | None:
    """Show the Canvas Size dialog; the choice, or None when cancelled (tests replace this)."""
    dialog = CanvasSizeDialog(doc.width, doc.height, parent)
    try:
        return dialog.spec() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()


def ask_image_size(parent: QWidget | None, doc: Document) -> ImageSizeSpec | None:
    """Show the Image Size dialog; the choice, or None when cancelled (tests replace this)."""
    dialog = ImageSizeDialog(doc.width, doc.height, parent)
    try:
        return dialog.spec() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()


class _Window(Protocol):
    """What the commands need of the main window."""

    @property
    def document(self) -> Document | None: ...

    def show_message(self, text: str) -> None: ...


def _run(window: _Window, what: str, make: object) -> bool:
    doc = window.document
    if doc is None:
        return False
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # a big picture takes seconds
    try:
        doc.execute(make())  # type: ignore[operator]
    except (EditError, HistoryBusyError) as exc:
        log.info("%s refused: %s", what, exc)
        window.show_message(f"Cannot {what}: {exc}")
        return False
    finally:
        QApplication.restoreOverrideCursor()
    return True


def _fit(window: _Window) -> None:
    view = getattr(window, "view", None)
    if view is not None:
        view.fit()  # the whole new canvas in view


def change_canvas_size(window: _Window) -> None:
    """Image → Canvas Size…: ask, then grow or crop the canvas (one undo step)."""
    doc = window.document
    if doc is None:
        return
    spec = ask_canvas_size(window if isinstance(window, QWidget) else None, doc)
    if spec is None or spec.margins.is_zero:
        return
    if _run(window, "change the canvas size", lambda: ResizeCanvas(doc, spec.margins, spec.crop_layers)):
        _fit(window)
        window.show_message(f"Canvas: {doc.width} × {doc.height} px")


def change_image_size(window: _Window) -> None:
    """Image → Image Size…: ask, then resample the whole document (one undo step)."""
    doc = window.document
    if doc is None:
        return
    spec = ask_image_size(window if isinstance(window, QWidget) else None, doc)
    if spec is None or (spec.width, spec.height) == (doc.width, doc.height):
        return
    if _run(window, "change the image size", lambda: ScaleImage(doc, spec.width, spec.height, spec.kind)):
        _fit(window)
        window.show_message(f"Image: {doc.width} × {doc.height} px ({spec.kind.value})")

"""The staging area: finished results wait on the canvas for accept or discard.

A :class:`StagedResult` (a plan, its batch of images and the engine's metadata) is shown
as an overlay over ``plan.area`` exactly as accepting would place it (inpaint results
through the paste mask), with a small floating bar on the canvas: ◀ n/N ▶, Accept,
Discard. Nothing touches the document until :meth:`StagingArea.accept`, which runs
:func:`~sfumato.planner.placement.place_result` — one undoable command inserting a
``generated`` layer. Discard just clears the overlay.

Shortcuts (window actions made by the controller): Shift+Return accepts, Alt+Left /
Alt+Right step through a batch, Esc (when nothing runs) discards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.desktop.canvas_view import CanvasView
from sfumato.desktop.preview_overlay import ImageOverlay, rgba_to_qimage
from sfumato.planner.placement import place_result, result_pixels
from sfumato.planner.plan import Plan
from sfumato.planner.record import result_seed

log = logging.getLogger(__name__)

__all__ = ["StagedResult", "StagingArea", "StagingBar"]


THUMB_SIDE = 96


def make_thumbnail(image: QImage, side: int = THUMB_SIDE) -> QImage:
    """``image`` scaled to fit ``side``² (smooth)."""
    return image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


@dataclass(frozen=True, eq=False)
class StagedResult:
    """One finished generation: ``images`` are uint8 RGB at the generation size, one per
    batch item; ``metadata`` is the engine's ``Finished.metadata`` (``seeds`` per image).

    What the window shows of an image is made from these on the GUI thread the first
    time it is asked for, then kept: :meth:`picture` (the image placed as accepting
    would place it, by :func:`~sfumato.planner.placement.result_pixels`) and
    :meth:`thumbnail` (for the history).
    """

    plan: Plan
    images: tuple[np.ndarray, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    _pictures: dict[int, QImage] = field(default_factory=dict, init=False, repr=False)
    _thumbnails: dict[int, QImage] = field(default_factory=dict, init=False, repr=False)

    def picture(self, index: int) -> QImage:
        """Image ``index`` as accepting would place it over ``plan.area`` (a premultiplied QImage)."""
        if index not in self._pictures:
            self._pictures[index] = rgba_to_qimage(result_pixels(self.plan, self.images[index]))
        return self._pictures[index]

    def thumbnail(self, index: int) -> QImage:
        """Image ``index`` at most :data:`THUMB_SIDE` a side."""
        if index not in self._thumbnails:
            self._thumbnails[index] = make_thumbnail(rgba_to_qimage(self.images[index]))
        return self._thumbnails[index]

    def seed(self, index: int) -> int:
        return result_seed(self.plan, self.metadata, index)


class StagingArea(QObject):
    """Holds at most one staged result for one view (see the module docstring).

    ``changed`` fires whenever something is staged, cleared or the shown index moves;
    ``accepted(layer)`` after a result became a layer.
    """

    Z = 40.0
    changed = Signal()
    accepted = Signal(object)  # PixelLayer

    def __init__(self, view: CanvasView, document: Callable[[], Document | None] | None = None) -> None:
        super().__init__(view)
        self._view = view
        self._document = document or (lambda: view.document)
        self._overlay = ImageOverlay(view, self.Z)
        self._staged: StagedResult | None = None
        self._index = 0
        self.bar = StagingBar(self, view)

    # -- state -----------------------------------------------------------------------------
    @property
    def staged(self) -> StagedResult | None:
        return self._staged

    @property
    def index(self) -> int:
        return self._index

    @property
    def count(self) -> int:
        return 0 if self._staged is None else len(self._staged.images)

    @property
    def active(self) -> bool:
        return self._staged is not None

    @property
    def overlay(self) -> ImageOverlay:
        return self._overlay

    # -- actions ---------------------------------------------------------------------------
    def stage(self, result: StagedResult, index: int = 0) -> None:
        """Show ``result`` (replacing whatever was staged) at batch image ``index``."""
        if not result.images:
            self.discard()
            return
        self._staged = result
        self._index = max(0, min(index, len(result.images) - 1))
        self._show()

    def show_index(self, index: int) -> None:
        if self._staged is None:
            return
        self._index = index % len(self._staged.images)
        self._show()

    def next(self) -> None:
        self.show_index(self._index + 1)

    def previous(self) -> None:
        self.show_index(self._index - 1)

    def discard(self) -> None:
        had = self._staged is not None
        self._staged = None
        self._index = 0
        self._overlay.clear()
        if had:
            self.changed.emit()

    def accept(self, doc: Document | None = None) -> PixelLayer | None:
        """Place the shown image in ``doc`` (default: the view's document) as a
        ``generated`` layer — one undo step — and clear the staging area."""
        staged = self._staged
        doc = doc if doc is not None else self._document()
        if staged is None or doc is None:
            return None
        index = self._index
        layer = place_result(
            doc, staged.plan, staged.images[index], metadata=staged.metadata, batch_index=index
        )
        self.discard()
        self.accepted.emit(layer)
        return layer

    def _show(self) -> None:
        assert self._staged is not None
        self._overlay.show_image(self._staged.picture(self._index), self._staged.plan.area)
        self.changed.emit()


class StagingBar(QFrame):
    """The floating ◀ n/N ▶ Accept Discard bar at the bottom of the canvas view."""

    def __init__(self, staging: StagingArea, view: CanvasView) -> None:
        super().__init__(view)
        self.setObjectName("stagingBar")
        self._staging = staging
        self._view = view
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setStyleSheet(
            "#stagingBar { background: rgba(40, 40, 44, 230); border-radius: 6px; }"
            " QLabel { color: white; padding: 0 6px; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        self.previous_button = self._button("◀", "Previous image of the batch (Alt+Left)", staging.previous)
        self.label = QLabel("")
        self.next_button = self._button("▶", "Next image of the batch (Alt+Right)", staging.next)
        self.accept_button = self._button("Accept", "Add this result as a new layer (Shift+Return)", staging.accept)
        self.discard_button = self._button("Discard", "Throw this result away (Esc)", staging.discard)
        for w in (self.previous_button, self.label, self.next_button, self.accept_button, self.discard_button):
            layout.addWidget(w)
        staging.changed.connect(self._refresh)
        view.installEventFilter(self)
        self.hide()

    def _button(self, text: str, tip: str, slot: Any) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setCursor(Qt.CursorShape.ArrowCursor)
        if slot is not None:
            button.clicked.connect(lambda _=False: slot())
        return button

    def _refresh(self) -> None:
        count = self._staging.count
        if count == 0:
            self.hide()
            return
        many = count > 1
        self.previous_button.setVisible(many)
        self.next_button.setVisible(many)
        self.label.setText(f"{self._staging.index + 1} / {count}" if many else "Result")
        self.adjustSize()
        self._place()
        self.show()
        self.raise_()

    def _place(self) -> None:
        x = max(0, (self._view.width() - self.width()) // 2)
        y = max(0, self._view.height() - self.height() - 12)
        self.move(x, y)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self._view and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False

"""Image → Upscale…: the visible picture 2–4× larger, optionally refined tile by tile.

The dialog asks for the scale, a super-resolution file (else Lanczos), whether to refine
with the Generation dock's model, the strength and the tile. :class:`UpscaleJob` flattens
the picture (copy-on-write, on the GUI thread), plans the job with the planner
(:func:`~sfumato.planner.upscale.plan_upscale`: a refusal is a message, before anything
runs) and sends it to the generation worker as an
:class:`~sfumato.desktop.worker.UpscaleInput`; the worker runs the planner's tile loop
with its engine; with the document itself (a copy-on-write snapshot), so each tile gets
the document's regions and control layers over it. Progress shows in the Generation dock
("tile k of n, step s of t"); Esc (the window's Cancel) or the dock's Cancel stops it
between steps.

Where the result goes is asked (:class:`Destination`):

- **a new document** (after the usual question when the current one has unsaved
  changes), one paint layer with the recipe kept; the tiles' step previews cannot be
  shown on a canvas that does not exist yet, so the dock says where the refine is;
- **this document**: Image Size scales the canvas by the factor
  (:func:`~sfumato.canvas.edits.canvas_size.scale_image`) and the result goes above the
  active layer as a ``generated`` layer carrying the upscale's record, the two in one undo
  step (the history's group). While each tile denoises, its step previews are drawn over
  the canvas where the tile lies (the generation's preview overlay).

:meth:`UpscaleJob.refine_in_tiles` is the Generation dock's offer for a whole-canvas
Refine beyond the model's size (:func:`~sfumato.planner.upscale.tiled_refine_reason`):
scale 1, the dock's strength, into this document.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QWidget,
)
from sfumato.canvas.edits.canvas_size import scale_image
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop.worker import FailureKind, GenerationWorker, UpscaleInput, snapshot_document
from sfumato.planner.errors import PlanError
from sfumato.planner.placement import PlaceResultCommand, insertion_point
from sfumato.planner.tiles import Tile
from sfumato.planner.upscale import (
    DEFAULT_STRENGTH,
    SCALES,
    UpscalePlan,
    UpscaleProgress,
    plan_upscale,
    tile_area,
    upscale_record,
)

log = logging.getLogger(__name__)

__all__ = [
    "Destination", "UpscaleChoice", "UpscaleDialog", "UpscaleJob", "install_upscale", "place_upscale",
    "result_document",
]

UPSCALER_FILTER = "Super-resolution models (*.pth *.safetensors *.pt *.ckpt *.bin);;All files (*)"


class Destination(Enum):
    """Where an upscale's result goes."""

    NEW_DOCUMENT = "new document"
    THIS_DOCUMENT = "this document"


@dataclass(frozen=True)
class UpscaleChoice:
    """What the dialog asked for: ``tile`` ``None`` is the model's native size; ``scale``
    1 (the Generation dock's tiled refine, not offered in the dialog) keeps the size."""

    scale: int = 2
    upscaler: str | None = None
    refine: bool = True
    strength: float = DEFAULT_STRENGTH
    tile: int | None = None
    destination: Destination = Destination.NEW_DOCUMENT


class UpscaleDialog(QDialog):
    """Scale, upscaler file, refine (strength, tile)."""

    def __init__(self, width: int, height: int, choice: UpscaleChoice | None = None,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Upscale")
        self._size = (width, height)
        choice = choice or UpscaleChoice()
        form = QFormLayout(self)
        self.scale = QComboBox()
        for s in SCALES:
            self.scale.addItem(f"{s}×", s)
        self.scale.setCurrentIndex(max(0, SCALES.index(choice.scale) if choice.scale in SCALES else 0))
        form.addRow("&Scale:", self.scale)
        self.upscaler = QLineEdit(choice.upscaler or "")
        self.upscaler.setPlaceholderText("Lanczos (no model)")
        self.upscaler.setToolTip("An ESRGAN-family file: ComfyUI models/upscale_models, A1111 models/ESRGAN")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.upscaler, 1)
        row.addWidget(browse)
        form.addRow("&Upscaler:", row)
        self.refine = QCheckBox("Refine with the Generation dock's model and prompt")
        self.refine.setChecked(choice.refine)
        form.addRow(self.refine)
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.05, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(choice.strength)
        form.addRow("S&trength:", self.strength)
        self.tile = QSpinBox()
        self.tile.setRange(0, 4096)
        self.tile.setSingleStep(64)
        self.tile.setSpecialValueText("the model's size")
        self.tile.setValue(choice.tile or 0)
        form.addRow("T&ile:", self.tile)
        self.result_size = QLineEdit()
        self.result_size.setReadOnly(True)
        form.addRow("Result:", self.result_size)
        self.into_new = QRadioButton("Into a &new document")
        self.into_this = QRadioButton(
            "Into t&his document (the canvas grows by the factor; the result is a new generated layer, one undo step)"
        )
        self.into_this.setChecked(choice.destination is Destination.THIS_DOCUMENT)
        self.into_new.setChecked(choice.destination is Destination.NEW_DOCUMENT)
        form.addRow("Put the result:", self.into_new)
        form.addRow("", self.into_this)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.refine.toggled.connect(self._update)
        self.scale.currentIndexChanged.connect(lambda _i: self._update())
        self._update()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Super-resolution model", self.upscaler.text(), UPSCALER_FILTER)
        if path:
            self.upscaler.setText(path)

    def _update(self, *_args: object) -> None:
        self.strength.setEnabled(self.refine.isChecked())
        self.tile.setEnabled(self.refine.isChecked())
        s = int(self.scale.currentData())
        self.result_size.setText(f"{self._size[0] * s} × {self._size[1] * s} px")

    def choice(self) -> UpscaleChoice:
        text = self.upscaler.text().strip()
        return UpscaleChoice(
            scale=int(self.scale.currentData()),
            upscaler=text or None,
            refine=self.refine.isChecked(),
            strength=round(float(self.strength.value()), 4),
            tile=int(self.tile.value()) or None,
            destination=Destination.THIS_DOCUMENT if self.into_this.isChecked() else Destination.NEW_DOCUMENT,
        )


def result_document(picture: np.ndarray, recipe: Any) -> Document:
    """A new, unsaved document holding ``picture`` (uint8 RGB) as one opaque paint layer."""
    h, w = picture.shape[:2]
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = picture[..., :3]
    rgba[..., 3] = 255
    doc = Document(w, h, recipe=dataclasses.replace(recipe))
    layer = PixelLayer("Upscaled", TiledSurface.from_array(rgba))
    doc.root.append(layer)
    doc.active = layer
    doc.history.mark_unsaved()  # nothing on disk holds it: closing asks to save
    return doc


def place_upscale(doc: Document, picture: np.ndarray, plan: UpscalePlan, upscaler: str | None = None) -> PixelLayer:
    """Put an upscale's ``picture`` (uint8 RGB at ``plan.size``) into ``doc``: Image Size
    to ``plan.size`` (skipped at scale 1), then a ``generated`` layer carrying
    :func:`~sfumato.planner.upscale.upscale_record`, above the active layer (as a result
    is placed); one undo step."""
    h, w = picture.shape[:2]
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = picture[..., :3]
    rgba[..., 3] = 255
    label = f"Upscale {plan.scale}×" if plan.scale > 1 else "Refine in Tiles"
    record = upscale_record(plan, Path(upscaler).name if upscaler else None)
    prompt = " ".join(str(record.get("prompt", "")).split())
    name = f"{label}: {prompt[:39] + '…' if len(prompt) > 40 else prompt}" if prompt else label
    layer = PixelLayer(name, TiledSurface.from_array(rgba), role=Role.GENERATED, generation=record)
    with doc.history.group(label):
        if (doc.width, doc.height) != (w, h):
            scale_image(doc, w, h)
        parent, index = insertion_point(doc)
        doc.execute(PlaceResultCommand(doc, layer, index, label, parent))
    return layer


class UpscaleJob(QObject):
    """Runs an upscale through the window's worker (see the module docstring).
    ``message(text)`` is for the status bar; ``finished(doc)`` carries the new document
    before it is opened."""

    message = Signal(str)
    finished = Signal(object)
    preview_shown = Signal(object)  # the document Rect a tile's preview was drawn over

    def __init__(self, window: Any, controller: Any) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.choice = UpscaleChoice()
        self._job: tuple[int, UpscalePlan, Any] | None = None
        self._target: Document | None = None  # the document the result goes into (THIS_DOCUMENT)
        self._upscaler: str | None = None
        self._connected: GenerationWorker | None = None
        self.message.connect(window.show_message)

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def dock(self) -> Any:
        return self.controller.dock

    def ask(self) -> int | None:
        """The dialog, then :meth:`start`; the job id or ``None``."""
        doc = self.window.document
        if doc is None:
            return None
        dialog = UpscaleDialog(doc.width, doc.height, self.choice, self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        self.choice = dialog.choice()
        return self.start(doc, self.choice)

    def start(self, doc: Document, choice: UpscaleChoice) -> int | None:
        """Plan and submit the upscale of ``doc``'s visible picture; the job id, or
        ``None`` with a message when it cannot start."""
        from sfumato.desktop import layer_actions
        from sfumato.planner.recipe import settings_from_recipe

        if choice.upscaler and not Path(choice.upscaler).expanduser().is_file():
            self._refuse(f"The upscaler file {choice.upscaler} does not exist.")
            return None
        settings = None
        if choice.refine:
            overrides = dict(self.dock.overrides())
            overrides.pop("strength", None)  # the refine's own strength is the dialog's
            if overrides.get("model") is None and doc.recipe.model is None:
                self._refuse("Refining needs a model: choose one in the Generation dock, or upscale without refining.")
                return None
            try:
                settings = settings_from_recipe(doc.recipe, **overrides)
            except PlanError as error:
                self._refuse(f"Cannot upscale: {error}")
                return None
        try:
            plan = plan_upscale(doc.width, doc.height, choice.scale, settings, strength=choice.strength,
                                tile=choice.tile, document=snapshot_document(doc) if settings else None)  # fmt: skip
        except PlanError as error:
            self._refuse(f"Cannot upscale: {error}")
            return None
        worker = self.controller.worker
        self._connect(worker)
        picture = layer_actions.visible_picture(doc)
        if self.controller.busy:  # the worker's queue is shared: latest wins
            self.controller.cancel_job()
        job = worker.submit(UpscaleInput(picture, plan, choice.upscaler))
        self._job = (job, plan, doc.recipe)
        self._target = doc if choice.destination is Destination.THIS_DOCUMENT else None
        self._upscaler = choice.upscaler
        what = f"{plan.source.width}×{plan.source.height} → {plan.size.width}×{plan.size.height}"
        self.dock.clear_error()
        self.dock.set_busy(True, "Upscaling…" if plan.scale > 1 else "Refining in tiles…")
        self.dock.show_notes(plan.notes)
        self.message.emit(f"Upscale {what}" + (f", refined in {len(plan.grid)} tiles" if plan.grid else ""))
        return job

    def refine_in_tiles(self) -> int | None:
        """The Generation dock's offer: refine the whole canvas in tiles at its own size
        (scale 1, no super-resolution) with the dock's settings and strength, into this
        document as a generated layer."""
        doc = self.window.document
        if doc is None:
            return None
        strength = float(self.dock.strength.value())
        if not 0.0 < strength < 1.0:
            self._refuse("Refining in tiles needs a strength below 1 (at 1 nothing of the picture is kept).")
            return None
        choice = UpscaleChoice(scale=1, refine=True, strength=round(strength, 4),
                               destination=Destination.THIS_DOCUMENT)  # fmt: skip
        return self.start(doc, choice)

    def cancel(self) -> bool:
        """Cancel the running upscale; True when there was one."""
        if self._job is None:
            return False
        self.controller.worker.cancel(self._job[0])
        return True

    def _refuse(self, text: str) -> None:
        self.dock.show_error(text)
        self.message.emit(text)

    def _connect(self, worker: GenerationWorker) -> None:
        if self._connected is worker:
            return
        worker.progress.connect(self._on_progress)
        worker.loading.connect(self._on_loading)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        worker.upscale_tile.connect(self._on_tile)
        worker.tile_preview.connect(self._on_tile_preview)
        cancel = self.window.actions.get("cancel")
        if cancel is not None:
            cancel.triggered.connect(lambda _=False: self.cancel())
        self.dock.cancel_requested.connect(self.cancel)
        self._connected = worker

    def _mine(self, job: int) -> bool:
        return self._job is not None and self._job[0] == job

    def _release_dock(self, text: str) -> None:
        if not self.controller.busy:  # a generation that replaced this job owns the dock now
            self.controller.preview.clear()  # the tiles' previews
            self.dock.set_busy(False, text)

    def _on_tile(self, job: int, progress: UpscaleProgress) -> None:
        """The dock's progress says which tile and step (the bar is over all of them)."""
        if not self._mine(job) or progress.tile >= progress.tiles:
            return
        text = f"Tile {progress.tile + 1} of {progress.tiles}"
        if progress.steps:
            text += f", step {progress.step} of {progress.steps}"
        self.dock.set_progress(round(1000 * progress.fraction), 1000)
        self.dock.progress.setFormat(text)

    def _on_tile_preview(self, job: int, rgb: np.ndarray, tile: Tile) -> None:
        """A tile's step preview over the canvas where the tile lies (this document only:
        a new document has no canvas yet; the dock shows the tile and step)."""
        if not self._mine(job) or self._target is None or self.window.document is not self._target:
            return
        assert self._job is not None
        plan = self._job[1]
        rect = tile_area(tile, plan.scale, plan.source.width, plan.source.height)
        self.controller.preview.show(rgb, rect)
        self.preview_shown.emit(rect)

    def _on_loading(self, job: int, text: str) -> None:
        if self._mine(job):
            self.dock.set_busy(True, text)

    def _on_progress(self, job: int, step: int, total: int) -> None:
        if self._mine(job):
            self.dock.set_progress(step, total)  # the tile and step follow (upscale_tile)

    def _on_finished(self, job: int, images: tuple[np.ndarray, ...], _metadata: dict[str, Any]) -> None:
        if not self._mine(job):
            return
        assert self._job is not None
        _, plan, recipe = self._job
        target, self._target = self._target, None
        self._job = None
        self._release_dock("Upscaled" if plan.scale > 1 else "Refined")
        if target is not None and self.window.document is target:
            layer = place_upscale(target, images[0], plan, self._upscaler)
            self.message.emit(f"Added {layer.name!r} ({plan.size.width}×{plan.size.height}; undo removes it"
                              + (" and restores the size)." if plan.scale > 1 else ")."))  # fmt: skip
            return
        if target is not None:
            self.message.emit("The document was closed while upscaling: the result opens as a new document.")
        doc = result_document(images[0], recipe)
        self.finished.emit(doc)
        files = self.window.files
        if not files.confirm_discard():
            self.message.emit("Upscale done; the result was not opened (the current document was kept).")
            return
        files.document_opened.emit(doc)
        files.set_path(None)
        self.message.emit(f"Upscaled to {plan.size.width}×{plan.size.height}: a new, unsaved document.")

    def _on_failed(self, job: int, text: str, _kind: FailureKind) -> None:
        if self._mine(job):
            self._job = None
            self._target = None
            self._release_dock("Failed")
            self._refuse(f"Upscale failed: {text}")

    def _on_cancelled(self, job: int) -> None:
        if self._mine(job):
            self._job = None
            self._target = None
            self._release_dock("Cancelled")
            self.message.emit("Upscale cancelled.")


def install_upscale(window: Any, controller: Any) -> UpscaleJob:
    """Image → Upscale… on ``window``, running through ``controller``'s worker and dock."""
    job = UpscaleJob(window, controller)
    action = QAction("&Upscale…", window)
    action.setObjectName("upscale")
    tip = "Make the picture 2–4× larger (super-resolution or Lanczos), refined tile by tile"
    action.setStatusTip(tip)
    action.setToolTip(tip)
    action.triggered.connect(lambda _=False: job.ask())
    window.add_action("image", action, name="upscale")
    window.upscale_job = job
    return job

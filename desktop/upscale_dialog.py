"""Image → Upscale…: the visible picture 2–4× larger, optionally refined tile by tile.

The dialog asks for the scale, a super-resolution file (else Lanczos), whether to refine
with the Generation dock's model, the strength and the tile. :class:`UpscaleJob` flattens
the picture (copy-on-write, on the GUI thread), plans the job with the planner
(:func:`~sfumato.planner.upscale.plan_upscale`: a refusal is a message, before anything
runs) and sends it to the generation worker as an
:class:`~sfumato.desktop.worker.UpscaleInput`; the worker runs the planner's tile loop
with its engine. Progress shows in the Generation dock; Esc (the window's Cancel) or the
dock's Cancel stops it between steps. The result opens as a new document (after the usual
question when the current one has unsaved changes), one paint layer with the recipe kept.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
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
    QSpinBox,
    QWidget,
)
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop.worker import FailureKind, GenerationWorker, UpscaleInput
from sfumato.planner.errors import PlanError
from sfumato.planner.upscale import DEFAULT_STRENGTH, SCALES, UpscalePlan, plan_upscale

log = logging.getLogger(__name__)

__all__ = ["UpscaleChoice", "UpscaleDialog", "UpscaleJob", "install_upscale", "result_document"]

UPSCALER_FILTER = "Super-resolution models (*.pth *.safetensors *.pt *.ckpt *.bin);;All files (*)"


@dataclass(frozen=True)
class UpscaleChoice:
    """What the dialog asked for: ``tile`` ``None`` is the model's native size."""

    scale: int = 2
    upscaler: str | None = None
    refine: bool = True
    strength: float = DEFAULT_STRENGTH
    tile: int | None = None


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


class UpscaleJob(QObject):
    """Runs an upscale through the window's worker (see the module docstring).
    ``message(text)`` is for the status bar; ``finished(doc)`` carries the new document
    before it is opened."""

    message = Signal(str)
    finished = Signal(object)

    def __init__(self, window: Any, controller: Any) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.choice = UpscaleChoice()
        self._job: tuple[int, UpscalePlan, Any] | None = None
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
            plan = plan_upscale(doc.width, doc.height, choice.scale, settings, strength=choice.strength, tile=choice.tile)
        except PlanError as error:
            self._refuse(f"Cannot upscale: {error}")
            return None
        worker = self.controller.worker
        self._connect(worker)
        picture = layer_actions.visible_picture(doc)
        job = worker.submit(UpscaleInput(picture, plan, choice.upscaler))
        self._job = (job, plan, doc.recipe)
        what = f"{plan.source.width}×{plan.source.height} → {plan.size.width}×{plan.size.height}"
        self.dock.clear_error()
        self.dock.set_busy(True, "Upscaling…")
        self.message.emit(f"Upscale {what}" + (f", refined in {len(plan.grid)} tiles" if plan.grid else ""))
        return job

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
        cancel = self.window.actions.get("cancel")
        if cancel is not None:
            cancel.triggered.connect(lambda _=False: self.cancel())
        self.dock.cancel_requested.connect(self.cancel)
        self._connected = worker

    def _mine(self, job: int) -> bool:
        return self._job is not None and self._job[0] == job

    def _release_dock(self, text: str) -> None:
        if not self.controller.busy:  # a generation that replaced this job owns the dock now
            self.dock.set_busy(False, text)

    def _on_loading(self, job: int, text: str) -> None:
        if self._mine(job):
            self.dock.set_busy(True, text)

    def _on_progress(self, job: int, step: int, total: int) -> None:
        if self._mine(job):
            self.dock.set_progress(step, total)

    def _on_finished(self, job: int, images: tuple[np.ndarray, ...], _metadata: dict[str, Any]) -> None:
        if not self._mine(job):
            return
        assert self._job is not None
        _, plan, recipe = self._job
        self._job = None
        self._release_dock("Upscaled")
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
            self._release_dock("Failed")
            self._refuse(f"Upscale failed: {text}")

    def _on_cancelled(self, job: int) -> None:
        if self._mine(job):
            self._job = None
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

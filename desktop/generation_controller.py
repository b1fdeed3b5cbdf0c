"""The glue between the window and the engine: plan, start, preview, stage, accept, cancel.

:func:`install_generation` mounts everything on a :class:`~sfumato.desktop.main_window.MainWindow`:
the Generation, History and Models docks, the preview and staging overlays on the canvas
view, the staging shortcuts, and a :class:`GenerationController` registered through
``window.install_generation_controller`` (Ctrl+Enter generates, Esc cancels — or discards
a staged result when nothing runs).

One generation, step by step (all on the GUI thread except the engine run):

1. :meth:`GenerationController.generate` merges the document's recipe with the dock's
   overrides (:func:`~sfumato.planner.recipe.settings_from_recipe`) and takes a
   copy-on-write snapshot of the document (:func:`~sfumato.desktop.worker.snapshot_document`: no pixels copied).
2. It submits the snapshot and settings (a :class:`~sfumato.desktop.worker.PlanInput`)
   to the :class:`~sfumato.desktop.worker.GenerationWorker`, which plans it
   (:func:`~sfumato.planner.plan.plan`) and runs the request on its thread, so neither
   planning nor the model ever runs on the GUI thread (latest wins: generating again
   while one runs replaces it). The worker hands back the plan (``planned``); a
   :class:`~sfumato.planner.errors.PlanError` comes back as a message; nothing runs.
3. The worker's signals carry only the planner's and the engine's values; this
   controller turns each into what the canvas shows, once, here. A preview shows the
   whole request, so it is drawn over the plan's area by the preview overlay (inpaint:
   through the paste mask, :func:`~sfumato.desktop.preview_overlay.masked_preview`).
   Never in the document, never in undo.
4. The finished batch is staged (:mod:`sfumato.desktop.staging`: each image placed by
   the planner's :func:`~sfumato.planner.placement.result_pixels` when first shown) and
   added to the history. Accept is ``place_result``: one undoable command.
5. Failures show in the dock's banner and the status bar; the worker stays usable.

The button label follows the document cheaply: document events are coalesced (one
:func:`~sfumato.planner.plan.detect_mode` call per burst, no compositing). A whole-canvas
Refine larger than the model generates in one go (the planner's
:func:`~sfumato.planner.upscale.tiled_refine_reason`) is offered as a tiled refine at full
resolution in the dock (:meth:`UpscaleJob.refine_in_tiles
<sfumato.desktop.upscale_dialog.UpscaleJob.refine_in_tiles>`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QWidget
from sfumato.canvas import editing
from sfumato.canvas.model.document import (
    Document,
    DocumentReset,
    LayerPropertyChanged,
    PixelsChanged,
    RecipeChanged,
    SelectionChanged,
    StructureChanged,
)
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.desktop.generation_dock import GenerationDock
from sfumato.desktop.history_dock import HistoryDock
from sfumato.desktop.live_controller import install_live
from sfumato.desktop.models_dock import ModelsDock
from sfumato.desktop.preview_overlay import ImageOverlay, masked_preview
from sfumato.desktop.staging import StagedResult, StagingArea
from sfumato.desktop.worker import (
    EngineFactory,
    FailureKind,
    GenerationWorker,
    PlanInput,
    snapshot_document,
)
from sfumato.inference.detect import WeightsKind
from sfumato.planner.capabilities import document_problems
from sfumato.planner.errors import PlanError
from sfumato.planner.families import FamilyInfo, family_for_model
from sfumato.planner.plan import Mode, Plan, detect_mode
from sfumato.planner.recipe import settings_from_recipe
from sfumato.planner.styles import (
    Style,
    StyleError,
    installed_styles,
    load_styles,
    style_recipe_values,
    with_recipe_style,
)
from sfumato.planner.upscale import tiled_refine_reason

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from sfumato.desktop.live_controller import LiveController
    from sfumato.desktop.main_window import MainWindow

__all__ = ["GenerationController", "install_generation"]

_MODE_EVENTS = (
    StructureChanged, LayerPropertyChanged, PixelsChanged, SelectionChanged, RecipeChanged, DocumentReset,
)

#: What to tell the user next, per failure kind (appended to the engine's own message).
_NEXT_STEP = {
    FailureKind.MODEL_NOT_FOUND: "Pick another model, or add one in the Models dock.",
    FailureKind.BAD_MODEL: "Pick another model in the Generation dock.",
    FailureKind.ENGINE_UNAVAILABLE: "",
}


class GenerationController(QObject):
    """Owns the worker and the generation UI of one window (see the module docstring).

    Signals for observers and tests: ``job_started(plan)``, ``preview_shown(Rect)``
    (document rect of the drawn preview), ``staged()``, ``failed(message, kind)``,
    ``cancelled()``, ``mode_changed(label)``.
    """

    job_started = Signal(object)
    preview_shown = Signal(object)
    staged = Signal()
    failed = Signal(str, object)
    cancelled = Signal()
    mode_changed = Signal(str)

    PREVIEW_Z = 45.0

    def __init__(self, window: MainWindow, engine_factory: EngineFactory | None = None) -> None:
        super().__init__(window)
        self.window = window
        view = window.view
        self.worker = GenerationWorker(engine_factory, self)
        self.dock = GenerationDock()
        self.history = HistoryDock()
        self.models = ModelsDock()
        self.preview = ImageOverlay(view, self.PREVIEW_Z, frame=True)
        self.staging = StagingArea(view, lambda: self.window.document)
        self._doc: Document | None = None
        self._current: int | None = None  # the job whose events the window shows
        self._planned_size: tuple[int, int] | None = None  # the canvas the last run was planned on
        self._plan: Plan | None = None  # its plan, once the worker made it
        self._engine_ready = False
        #: Live mode (:mod:`sfumato.desktop.live_controller`), stopped before a normal run.
        self.live: LiveController | None = None
        self._mode_timer = QTimer(self)
        self._mode_timer.setSingleShot(True)
        self._mode_timer.setInterval(40)
        self._mode_timer.timeout.connect(self.refresh_mode)
        # What the model can do is checked again when the model or the sampler changes.
        self.dock.model.currentIndexChanged.connect(lambda _i: self.refresh_mode())
        self.dock.sampler.currentIndexChanged.connect(lambda _i: self.refresh_mode())

        w = self.worker
        w.planned.connect(self._on_planned)
        w.started_job.connect(self._on_started)
        w.loading.connect(self._on_loading)
        w.progress.connect(self._on_progress)
        w.preview.connect(self._on_preview)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)

        self.dock.prompt.focused.connect(self.warm_up)
        self.dock.generate_requested.connect(self.generate)
        self.dock.cancel_requested.connect(self.cancel)
        self.dock.strength.valueChanged.connect(lambda _v: self._mode_timer.start())
        self.models.models_changed.connect(self.dock.set_models)
        self.dock.style_chosen.connect(self.use_style)
        self.dock.tiled_refine_requested.connect(self.refine_in_tiles)
        self._families: dict[tuple[str, str | None], FamilyInfo] = {}
        self.models.model_chosen.connect(self.dock.choose_model)
        self.history.reapply.connect(self.staging.stage)
        self.history.reuse_seed.connect(self.dock.use_seed)
        self.staging.accepted.connect(self._on_accepted)
        self.staging.changed.connect(self._update_staging_actions)

    # -- state -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def current_plan(self) -> Plan | None:
        return self._plan if self._current is not None else None

    # -- document --------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        """Follow a new document: cancel a run for the old one, drop what was staged."""
        if self._doc is not None:
            self._doc.changed.disconnect(self._on_document_event)
        if self._doc is not None and doc is not self._doc:
            self.cancel_job()
            self.staging.discard()
        self._doc = doc
        self.dock.set_document(doc)
        if doc is not None:
            doc.changed.connect(self._on_document_event)
        self.refresh_mode()

    def _on_document_event(self, event: object) -> None:
        if isinstance(event, DocumentReset):
            self._drop_if_resized()
        if isinstance(event, _MODE_EVENTS):
            if isinstance(event, PixelsChanged) and not _matters_for_mode(event.layer):
                return
            if not self._mode_timer.isActive():
                self._mode_timer.start()

    def _drop_if_resized(self) -> None:
        """A run or a staged result planned for another canvas size would land in the wrong
        place (its area is in the old document's pixels): cancel or discard it, and say so."""
        doc = self._doc
        if doc is None or self._planned_size is None or self._planned_size == (doc.width, doc.height):
            return
        old, self._planned_size = self._planned_size, None
        if self._current is None and not self.staging.active:
            return
        self.cancel_job()
        self.staging.discard()
        self.window.show_message(
            f"The canvas changed size ({old[0]}×{old[1]} → {doc.width}×{doc.height}): the result "
            "planned for the old size was dropped; generate again."
        )

    def refresh_mode(self) -> str:
        """Recompute the main button's label (Generate / Refine / Inpaint); returns it."""
        doc = self._doc
        mode = Mode.TXT2IMG if doc is None else detect_mode(doc, float(self.dock.strength.value()),
                                                           edits=self.dock.model_edits())  # fmt: skip
        label = mode.label
        self.dock.show_fill(mode in (Mode.INPAINT, Mode.EXPAND))
        if label != self.dock.mode_label:
            self.dock.set_mode_label(label)
            action = self.window.actions.get("generate")
            if action is not None:
                action.setText(f"&{label}")
            self.mode_changed.emit(label)
        problems = () if doc is None else document_problems(doc, mode, self.dock.current_family(), self.dock.sampler_choice())
        self.dock.show_model_problems(problems)
        self.dock.show_tiled_offer(self.tiled_refine_reason(mode))
        return label

    def tiled_refine_reason(self, mode: Mode) -> str | None:
        """Why this whole-canvas Refine is better done in tiles (the planner decides), or
        ``None``: not a Refine, no model, or the canvas fits the model."""
        doc = self._doc
        model = self.dock.current_model() or (doc.recipe.model if doc is not None else None)
        if doc is None or mode is not Mode.IMG2IMG or not model:
            return None
        key = (model, self.dock.current_family())
        info = self._families.get(key)
        if info is None:  # reads a folder's config at most: once per model
            info = self._families[key] = family_for_model(*key)
        return tiled_refine_reason(doc.width, doc.height, info)

    def refine_in_tiles(self) -> bool:
        """The dock's offer taken: the whole canvas refined in tiles at full resolution
        into this document (:mod:`sfumato.desktop.upscale_dialog`); False when the window
        has no upscale job or it could not start."""
        job = getattr(self.window, "upscale_job", None)
        if job is None:
            return False
        if self.live is not None:
            self.live.stop()
        return job.refine_in_tiles() is not None

    # -- generate / cancel -----------------------------------------------------------------
    def generate(self) -> bool:
        """Plan the document and start a run (replacing a running one); False with a
        message when the document cannot be generated as it is."""
        doc = self._doc
        if doc is None:
            return False
        if self.live is not None:
            self.live.stop()  # one job at a time: a normal run replaces live mode
        self.dock.clear_error()
        overrides = self.dock.overrides()
        if overrides.get("model") is None and doc.recipe.model is None:
            self._show_failure(
                "No model is available. Add a Stable Diffusion checkpoint in the Models dock.",
                FailureKind.MODEL_NOT_FOUND,
            )
            return False
        try:
            settings = with_recipe_style(doc.recipe, settings_from_recipe(doc.recipe, **overrides))
        except (PlanError, StyleError) as error:
            self._show_failure(f"Cannot generate: {error}", FailureKind.PLAN)
            return False
        self._current = self.worker.submit(PlanInput(snapshot_document(doc), settings))
        self._planned_size = (doc.width, doc.height)
        self._plan = None
        self.preview.clear()
        self.staging.discard()
        self.dock.set_busy(True, "Loading the model…" if not self._engine_ready else "Starting…")
        self.dock.show_notes(())
        self.dock.set_last_seed(settings.seed)
        self._set_running_actions(True)
        label = detect_mode(doc, settings.strength, edits=self.dock.model_edits()).label
        self.window.show_message(f"{label}: seed {settings.seed}")
        return True

    def use_style(self, style: Style | None) -> None:
        """Choose ``style`` for the document (``None``: no style), one undo step: its name
        and values go into the recipe (so the document renders the same where the style
        is missing), its model, sampler, steps and CFG into the settings; live mode takes
        its live block."""
        doc = self._doc
        if doc is None:
            return
        editing.set_recipe(doc, **style_recipe_values(style))
        if style is not None and self.live is not None:
            self.live.use_style(style)
        self.window.show_message(f"Style: {style.name}" if style is not None else "No style")

    def refresh_styles(self) -> None:
        """Offer the user's styles and the built-in ones whose model and LoRAs are installed
        (called again whenever the Models dock rescans)."""
        entries = self.models.entries
        loras = [e for e in entries if e.kind is WeightsKind.LORA]
        models = [e.source for e in self.models.checkpoints()]
        book = installed_styles(load_styles(), loras, models)
        for problem in book.problems:
            log.warning("style: %s", problem)
        self.dock.set_styles(book)

    def warm_up(self) -> None:
        """Load the engine (torch, diffusers) on the worker thread ahead of the first run;
        called when the prompt box first gets the focus."""
        if not self._engine_ready and self.worker.engine is None:
            self.worker.preload()

    def cancel(self) -> bool:
        """Esc: cancel a running job, else discard a staged result; True when either."""
        if self.cancel_job():
            return True
        if self.staging.active:
            self.staging.discard()
            return True
        return False

    def cancel_job(self) -> bool:
        """Cancel the running job. The window is free at once: a run stops within one
        step, a model load goes on in the background (its model stays cached for the
        next run) and the job's late events are dropped."""
        job = self._current
        if job is None:
            return False
        self.worker.cancel(job)
        self._end_job()
        self.dock.set_busy(False, "Cancelled")
        self.window.show_message("Generation cancelled.")
        self.cancelled.emit()
        return True

    def shutdown(self) -> None:
        """Window close: stop the worker thread (joined) and abandon downloads."""
        self._mode_timer.stop()
        if self.live is not None:
            self.live.stop()
        self.worker.shutdown()
        self.models.shutdown()
        self._current = None
        self._plan = None

    # -- worker events -------------------------------------------------------------------------
    # Each takes the planner's and the engine's values and makes what the window shows;
    # events of any job but the current one (replaced, cancelled) are dropped.
    def _on_planned(self, job: int, planned: Plan) -> None:
        if job == self._current:
            self._plan = planned

    def _on_started(self, job: int) -> None:
        planned = self._plan
        if job != self._current or planned is None:
            return
        if not self._engine_ready:
            self.dock.set_busy(True, "Loading the model…")
        self.dock.show_notes(planned.notes)
        self.window.show_message(
            f"{planned.mode.label}: {planned.area.w}×{planned.area.h} px at {planned.size.width}×"
            f"{planned.size.height}, seed {planned.request.seed}"
        )
        self.job_started.emit(planned)

    def _on_loading(self, job: int, text: str) -> None:
        if job == self._current:
            self.dock.set_busy(True, text)
            self.window.show_message(text)

    def _on_progress(self, job: int, step: int, total: int) -> None:
        if job != self._current:
            return
        self._engine_ready = True
        self.dock.set_progress(step, total)

    def _on_preview(self, job: int, rgb: np.ndarray) -> None:
        """The engine's preview (of the whole request) over the plan's area; an inpaint's
        through the paste mask, so the painting around the mask shows unchanged."""
        planned = self._plan
        if job != self._current or planned is None:
            return
        self.preview.show(masked_preview(rgb, planned.paste_mask), planned.area)
        self.preview_shown.emit(planned.area)

    def _on_finished(self, job: int, images: tuple[np.ndarray, ...], metadata: dict[str, Any]) -> None:
        planned = self._plan
        if job != self._current or planned is None:
            return
        self._end_job()
        result = StagedResult(planned, tuple(images), dict(metadata))
        self.history.add_result(result)
        self.staging.stage(result)
        seconds = metadata.get("seconds")
        done = f"Done in {float(seconds):.1f} s" if seconds is not None else "Done"
        self.dock.set_busy(False, done)
        self.window.show_message(f"{done}: accept (Shift+Return) or discard (Esc) the result.")
        self.staged.emit()

    def _on_failed(self, job: int, message: str, kind: FailureKind) -> None:
        if job != self._current:
            return
        self._end_job()
        self.dock.set_busy(False, "Failed")
        self._show_failure(message, kind)

    def _on_cancelled(self, job: int) -> None:
        if job != self._current:
            return
        self._end_job()
        self.dock.set_busy(False, "Cancelled")
        self.window.show_message("Generation cancelled.")
        self.cancelled.emit()

    def _end_job(self) -> None:
        self._current = None
        self._plan = None
        self.preview.clear()
        self._set_running_actions(False)

    def _show_failure(self, message: str, kind: FailureKind | None) -> None:
        next_step = _NEXT_STEP.get(kind, "") if kind is not None else ""
        text = f"{message} {next_step}".strip()
        log.info("generation failed (%s): %s", kind, text)
        self.dock.show_error(text)
        dock = self.window.docks.get("generation")
        if dock is not None and not dock.isVisible():
            dock.show()
        self.window.statusBar().showMessage(text, 15000)
        self.failed.emit(text, kind)

    def _on_accepted(self, layer: PixelLayer) -> None:
        self.window.show_message(accepted_message(layer, self.window.document))

    # -- actions -----------------------------------------------------------------------------
    def make_actions(self) -> None:
        """Staging shortcuts in the Generate menu (window-wide)."""
        window = self.window
        specs: tuple[tuple[str, str, Any, tuple[str, ...]], ...] = (
            ("accept_result", "&Accept Result", self.staging.accept, ("Shift+Return", "Shift+Enter")),
            ("discard_result", "&Discard Result", self.staging.discard, ()),
            ("previous_result", "&Previous Result", self.staging.previous, ("Alt+Left",)),
            ("next_result", "&Next Result", self.staging.next, ("Alt+Right",)),
        )
        self._staging_actions: list[QAction] = []
        for name, text, slot, keys in specs:
            action = QAction(text, window)
            action.setObjectName(name)
            if keys:
                action.setShortcuts([QKeySequence(key) for key in keys])
                action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _=False, s=slot: s())
            action.setEnabled(False)
            window.addAction(action)
            window.add_action("generate", action, name=name)
            self._staging_actions.append(action)
        cancel = window.actions.get("cancel")
        if cancel is not None:
            cancel.setText("Cancel / Discard")
        self._shortcut_keeper = WindowShortcutKeeper(window, self._staging_actions)

    def _update_staging_actions(self) -> None:
        count = self.staging.count
        for action in getattr(self, "_staging_actions", []):
            many = action.objectName() in ("previous_result", "next_result")
            action.setEnabled(count > 1 if many else count > 0)

    def _set_running_actions(self, running: bool) -> None:
        self.dock.cancel_button.setEnabled(running)


class WindowShortcutKeeper(QObject):
    """Keeps ``actions``' shortcuts working wherever the focus is in ``window``.

    A text box claims the keys it could type (Shift+Return is a newline in the prompt
    box) by accepting Qt's ``ShortcutOverride`` event, so a window shortcut on such a key
    never fires while the box has the focus. This filter answers that event first for
    the keys of the *enabled* actions: while a result is staged Shift+Return accepts it
    from anywhere; otherwise the prompt box gets its newline as before.
    """

    def __init__(self, window: QWidget, actions: list[QAction]) -> None:
        super().__init__(window)
        self._window = window
        self._actions = actions
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(event, QKeyEvent):
            return False
        if not isinstance(watched, QWidget) or watched.window() is not self._window:
            return False
        pressed = QKeySequence(event.keyCombination())
        for action in self._actions:
            if action.isEnabled() and any(key.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch
                                          for key in action.shortcuts()):
                return True  # not accepted by the widget: the shortcut map triggers the action
        return False


def accepted_message(layer: PixelLayer, doc: Document | None) -> str:
    """The status line after Accept: where the result went and where painting goes on."""
    where = ""
    parent = layer.parent
    if parent is not None:
        below = parent.children[parent.children.index(layer) + 1:]
        where = f" above {below[0].name!r}" if below else f" at the bottom of {parent.name or 'the stack'!r}"
    active = doc.active if doc is not None else None
    still = f"; painting goes on on {active.name!r}" if active is not None and active is not layer else ""
    return f"Added {layer.name!r}{where}{still} (undo removes it)."


def _matters_for_mode(layer: PixelLayer) -> bool:
    """Pixel edits that can change the mode: masks always; paint only while it may flip
    between empty and painted (cheap enough: detect_mode reads no pixels)."""
    return layer.role in (Role.INPAINT_MASK, Role.PAINT, Role.GENERATED)


def install_generation(window: MainWindow, engine_factory: EngineFactory | None = None) -> GenerationController:
    """Mount the generation docks, overlays and actions on ``window`` and install the
    controller (see the module docstring). ``engine_factory`` makes the engine on the
    worker thread (default: automatic device)."""
    controller = GenerationController(window, engine_factory)
    area = Qt.DockWidgetArea
    window.add_dock(controller.dock, area.LeftDockWidgetArea, title="Generation", name="generation")
    window.add_dock(controller.history, area.LeftDockWidgetArea, title="History", name="history")
    window.add_dock(controller.models, area.LeftDockWidgetArea, title="Models", name="models",
                    tabify_with="history")
    controller.make_actions()
    install_live(controller)
    window.install_generation_controller(controller)
    window.document_replaced.connect(controller.set_document)
    controller.models.models_changed.connect(lambda _entries: controller.refresh_styles())
    controller.models.rescan()
    controller.refresh_styles()
    # History on top of its tab stack, unless there is no model yet: then say so.
    (window.docks["history"] if controller.models.checkpoints() else window.docks["models"]).raise_()
    controller.set_document(window.document)
    window.restore_dock_layout()
    return controller

"""Live mode in the window: the picture follows the brush.

The decisions — when a frame starts, when a running one is cancelled, what changed — are
the planner's :class:`~sfumato.planner.live.LiveScheduler`; this module only adapts it to
Qt (see ARCHITECTURE.md, "Live mode"):

- **Input.** The document's own events, no polling: pixel edits while a stroke is painted
  are *provisional* changes (a bounded rate of frames, never a cancel), the history entry
  that ends a stroke, fill or any other command is the *final* change; events that cannot
  change the picture (:func:`~sfumato.planner.live.affects_picture`: renames, locks, the
  active layer, hidden layers' pixels) start nothing. The live settings and the model
  picker count as changes too. One single-shot timer waits for the scheduler's next
  deadline.
- **Work.** A frame is the generation worker's ordinary job: a copy-on-write snapshot of
  the document, planned on the worker thread by :func:`~sfumato.planner.live_area.plan_live`
  (the live area: selection or mask → inpaint, small canvas → all of it, large canvas → a
  native window around the newest change), with live mode's own settings and a seed that
  stays the same from frame to frame (New seed draws another). The worker keeps the model
  loaded between frames and stops a cancelled frame within one step.
- **Output.** Every step's preview is drawn over the live area (through the inpaint paste
  mask or the window's blend ramp); finished frames accumulate in one overlay image of the
  canvas (at most :data:`LIVE_MAX_SIDE` a side), so windows rendered around earlier
  strokes stay. Nothing enters the document or the undo history until **Apply**, which
  places the last frame exactly as an accepted result (one undoable ``generated`` layer
  with its parameters). Turning live off, changing the model or the document clears it.
- **State.** The panel's state line and a badge on the canvas say off / idle / rendering
  and the measured frame time.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QImage, QKeySequence, QPainter
from PySide6.QtWidgets import QFileDialog, QLabel
from sfumato.canvas.files.animation import FrameRecorder
from sfumato.canvas.files.file_errors import SaveError
from sfumato.canvas.model.document import Document, DocumentReset, PixelsChanged
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.history import HistoryAction, HistoryChanged
from sfumato.canvas.model.layers import PixelLayer
from sfumato.desktop.live_panel import LivePanel, LiveSettings, shown_picture
from sfumato.desktop.preview_overlay import ImageOverlay, masked_preview, rgba_to_qimage
from sfumato.desktop.worker import FailureKind, PlanInput, snapshot_document
from sfumato.inference.catalog import ModelEntry
from sfumato.inference.detect import WeightsKind
from sfumato.inference.fast_presets import ORDINARY_LIVE, FastPreset, detect_fast_presets
from sfumato.planner.errors import PlanError
from sfumato.planner.live import (
    Action,
    Cancel,
    Clear,
    LiveScheduler,
    Start,
    affects_picture,
    changed_rect,
)
from sfumato.planner.live_area import plan_live, window_blend
from sfumato.planner.placement import place_result
from sfumato.planner.plan import Plan
from sfumato.planner.recipe import GenerationSettings, settings_from_recipe
from sfumato.planner.styles import Style, StyleError, recipe_style, with_recipe_style

if TYPE_CHECKING:
    from sfumato.desktop.generation_dock import GenerationDock
    from sfumato.desktop.main_window import MainWindow
    from sfumato.desktop.models_dock import ModelsDock
    from sfumato.desktop.staging import StagingArea
    from sfumato.desktop.worker import GenerationWorker


class NormalGeneration(Protocol):
    """What live mode shares with the window's normal generation (its controller, which
    installs live mode: typed here so the two modules do not import each other)."""

    window: MainWindow
    worker: GenerationWorker
    dock: GenerationDock
    staging: StagingArea
    models: ModelsDock
    live: LiveController | None

    def cancel_job(self) -> bool: ...

log = logging.getLogger(__name__)

__all__ = ["LIVE_MAX_SIDE", "LiveController", "install_live"]

#: The live overlay image is at most this many pixels a side (scaled up by the view).
LIVE_MAX_SIDE = 2048
_COMMITS = (HistoryAction.EXECUTE, HistoryAction.MERGE, HistoryAction.UNDO, HistoryAction.REDO)


@dataclass(frozen=True)
class LiveFrame:
    """A finished live frame: its plan, the image, the engine's metadata, and the coverage
    it is shown (and applied) with — ``None``: opaque, or the inpaint's paste mask."""

    plan: Plan
    image: np.ndarray
    metadata: dict[str, Any]
    alpha: np.ndarray | None


class LiveController(QObject):
    """See the module docstring. Signals for observers and tests: ``frame_finished(LiveFrame)``,
    ``preview_drawn(Rect)``, ``state_changed(str)`` ("off", "idle", "rendering"),
    ``applied(PixelLayer)``."""

    frame_finished = Signal(object)
    preview_drawn = Signal(object)
    state_changed = Signal(str)
    applied = Signal(object)

    LIVE_Z = 40.0
    PREVIEW_Z = 41.0

    def __init__(
        self, generation: NormalGeneration, panel: LivePanel, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(generation.window)
        self.generation = generation
        self.window = generation.window
        self.worker = generation.worker
        self.panel = panel
        self.clock = clock
        self.scheduler = LiveScheduler()
        self.seed = random.randrange(2**32)
        self.recorder = FrameRecorder()
        self.recording = False
        self.frame: LiveFrame | None = None
        self._state = "off"
        self._error = False  # the last frame failed; shown until the next one starts
        self._doc: Document | None = None
        self._jobs: dict[int, Start] = {}  # worker job id -> the scheduler's start
        self._plans: dict[int, Plan] = {}
        self._stroke_rect: Rect | None = None  # pixels changed since the last history entry
        self._window: Rect | None = None  # the last live window (large canvases)
        self._image: QImage | None = None  # finished frames, over the whole canvas
        self._scale = 1.0
        view = self.window.view
        self.overlay = ImageOverlay(view, self.LIVE_Z)
        self.preview = ImageOverlay(view, self.PREVIEW_Z, frame=True)
        self.badge = QLabel(view)
        self.badge.setObjectName("liveBadge")
        self.badge.setStyleSheet(
            "#liveBadge { background: rgba(20, 20, 20, 190); color: white; border-radius: 4px;"
            " padding: 3px 8px; font-weight: bold; }"
        )
        self.badge.hide()
        view.installEventFilter(self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(lambda: self._do(self.scheduler.tick(self.clock())))

        self.preset: FastPreset | None = None  # the live preset of the current model
        self._preset_model: tuple[str | None, str | None] | None = None
        self._loras: tuple[ModelEntry, ...] = ()
        panel.set_settings(LiveSettings.load(self.window.settings))
        panel.preset_chosen.connect(self._on_preset_chosen)
        panel.toggled.connect(self.set_enabled)
        panel.settings_changed.connect(self._on_settings_changed)
        panel.apply_requested.connect(self.apply)
        panel.new_seed_requested.connect(self.new_seed)
        panel.record_toggled.connect(self._on_record_toggled)
        panel.save_recording_requested.connect(self.save_recording_dialog)
        generation.dock.model.currentIndexChanged.connect(lambda _i: self._on_model_changed())

        w = self.worker
        w.planned.connect(self._on_planned)
        w.progress.connect(self._on_progress)
        w.preview.connect(self._on_preview)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)

    # -- state ---------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.scheduler.enabled

    @property
    def busy(self) -> bool:
        return self.scheduler.busy

    def set_enabled(self, on: bool) -> None:
        """Turn live mode on (a first frame of the document as it is) or off (what runs
        is cancelled, the live frame cleared)."""
        if on == self.enabled:
            self._sync_toggle()
            return
        if on:
            if self._doc is None:
                self._sync_toggle()
                return
            self.generation.cancel_job()  # one job at a time: live replaces a normal run
            self.generation.staging.discard()
            self._loras = self._installed_loras()
            self._refresh_presets()
            self._do(self.scheduler.enable(self.clock()))
        else:
            self._do(self.scheduler.disable(self.clock()))
        self._sync_toggle()
        self._show_state()

    def stop(self) -> None:
        """Live off (before a normal generation, a new document, closing)."""
        self.set_enabled(False)

    def new_seed(self) -> None:
        """Render the live frame from another, random seed."""
        self.use_seed(random.randrange(2**32))

    def use_seed(self, seed: int) -> None:
        """Render the live frames from ``seed`` (kept until changed)."""
        self.seed = seed
        self._change(None)

    def use_style(self, style: Style) -> None:
        """Take ``style``'s live block (sampler, steps, CFG, strength where it gives them)."""
        self._take_live_block(style)
        self._on_settings_changed()

    def _take_live_block(self, style: Style) -> None:
        current = self.panel.settings()
        block = style.live
        self.panel.set_settings(
            LiveSettings(
                strength=current.strength if block.strength is None else block.strength,
                steps=current.steps if block.steps is None else block.steps,
                cfg=current.cfg if block.cfg is None else block.cfg,
                sampler=current.sampler if block.sampler is None else block.sampler,
            )
        )

    # -- document ------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        if self._doc is not None:
            self._doc.changed.disconnect(self._on_document_event)
            self._doc.history.changed.disconnect(self._on_history)
        if doc is not self._doc:
            self.stop()
            self._reset_image()
        self._doc = doc
        if doc is not None:
            doc.changed.connect(self._on_document_event)
            doc.history.changed.connect(self._on_history)

    def _on_document_event(self, event: object) -> None:
        if not self.enabled:
            return
        if isinstance(event, DocumentReset):
            self._reset_image()
        if not affects_picture(event):
            return
        if isinstance(event, PixelsChanged):
            rect = event.rect
            self._stroke_rect = rect if self._stroke_rect is None else self._stroke_rect.union(rect)
            self._change(rect, provisional=True)
        else:
            self._change(changed_rect(event))

    def _on_history(self, event: HistoryChanged) -> None:
        if not self.enabled or event.action not in _COMMITS or self._stroke_rect is None:
            return
        rect, self._stroke_rect = self._stroke_rect, None
        self._change(rect)

    def _on_settings_changed(self) -> None:
        self.panel.settings().save(self.window.settings)
        self._change(None)

    def _refresh_presets(self) -> None:
        """Offer the live presets of the chosen model; a model not seen before gets its
        best preset's sampler, steps and guidance (the strength stays the artist's)."""
        doc = self._doc
        model = self.generation.dock.current_model() or (doc.recipe.model if doc is not None else None)
        family = self.generation.dock.current_family()
        if (model, family) == self._preset_model:
            return
        self._preset_model = (model, family)
        presets = detect_fast_presets(model, family=family, loras=self._loras) if model else (ORDINARY_LIVE,)
        self.panel.set_presets(presets)
        self._use_preset(presets[0])
        try:
            style = recipe_style(doc.recipe) if doc is not None else None
        except StyleError as error:
            log.info("live mode ignores the document's style: %s", error)
            style = None
        if style is not None:
            self._take_live_block(style)  # the document's style speaks after the preset

    def _on_preset_chosen(self, preset: FastPreset) -> None:
        self._use_preset(preset)
        self._on_settings_changed()

    def _use_preset(self, preset: FastPreset) -> None:
        self.preset = preset
        current = self.panel.settings()
        self.panel.set_settings(
            LiveSettings(
                strength=max(current.strength, preset.min_strength),
                steps=preset.steps,
                cfg=current.cfg if preset.cfg is None else preset.cfg,
                sampler=preset.sampler,
            )
        )
        log.info("live preset: %s", preset.name)

    def _installed_loras(self) -> tuple[ModelEntry, ...]:
        """The LoRAs the Models dock found (its scan, not one per frame or per start)."""
        return tuple(e for e in self.generation.models.entries if e.kind is WeightsKind.LORA)

    def _on_models_rescanned(self) -> None:
        self._loras = self._installed_loras()
        self._refresh_presets()

    def _on_model_changed(self) -> None:
        self._loras = self._installed_loras()
        self._refresh_presets()  # the preset list shows before live mode is turned on
        if self.enabled:
            self._reset_image()  # never show one model's frame as if another made it
            self.frame = None
            self._change(None)

    def _change(self, rect: Rect | None, *, provisional: bool = False) -> None:
        if self.enabled:
            self._do(self.scheduler.changed(self.clock(), rect, provisional=provisional))

    # -- the scheduler's actions ---------------------------------------------------------
    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Start):
                self._start(action)
            elif isinstance(action, Cancel):
                for job, start in self._jobs.items():
                    if start.job == action.job:
                        self.worker.cancel(job)
            elif isinstance(action, Clear):
                self._clear()
        self._arm_timer()
        self._show_state()

    def _arm_timer(self) -> None:
        deadline = self.scheduler.deadline()
        if deadline is None:
            self._timer.stop()
            return
        self._timer.start(max(0, math.ceil((deadline - self.clock()) * 1000)))

    def _start(self, start: Start) -> None:
        doc = self._doc
        settings = self._settings() if doc is not None else None
        if doc is None or settings is None:
            self._do(self.scheduler.job_done(start.job, self.clock(), finished=False))
            return
        loras = self._loras
        planner = partial(
            plan_live, latest=start.latest, previous=self._window, preset=self.preset, loras=lambda: loras
        )
        job = self.worker.submit(PlanInput(snapshot_document(doc), settings, planner))
        self._jobs[job] = start

    def _settings(self) -> GenerationSettings | None:
        doc = self._doc
        assert doc is not None
        live = self.panel.settings()
        overrides = self.generation.dock.overrides()
        if overrides.get("model") is None and doc.recipe.model is None:
            self._fail("No model is available. Add a Stable Diffusion checkpoint in the Models dock.")
            return None
        overrides.update(
            batch=1, seed=self.seed, strength=live.strength, steps=live.steps, cfg=live.cfg, sampler=live.sampler
        )
        try:
            return with_recipe_style(doc.recipe, settings_from_recipe(doc.recipe, **overrides))
        except (PlanError, StyleError) as error:
            self._fail(f"Cannot render live: {error}")
            return None

    # -- worker events (only this controller's jobs) ---------------------------------------
    def _on_planned(self, job: int, planned: Plan) -> None:
        if job in self._jobs:
            self._plans[job] = planned
            if planned.paste_mask is None and planned.area != self._doc_rect():
                self._window = planned.area

    def _on_progress(self, job: int, step: int, total: int) -> None:
        start = self._jobs.get(job)
        if start is not None:
            self._do(self.scheduler.job_step(start.job, self.clock(), step, total))

    def _on_preview(self, job: int, rgb: np.ndarray) -> None:
        planned = self._plans.get(job)
        if planned is None or not self.enabled:
            return
        self.preview.show(masked_preview(rgb, self._alpha(planned)), planned.area)
        self.preview_drawn.emit(planned.area)

    def _on_finished(self, job: int, images: tuple[np.ndarray, ...], metadata: dict[str, Any]) -> None:
        start = self._jobs.pop(job, None)
        planned = self._plans.pop(job, None)
        if start is None:
            return
        if planned is not None and images and self.enabled:
            frame = LiveFrame(planned, np.asarray(images[0]), dict(metadata), self._alpha(planned))
            self.frame = frame
            self._draw(frame)
            self.preview.clear()
            self.panel.apply_button.setEnabled(True)
            if self.recording:
                self._record()
            self.frame_finished.emit(frame)
        self._do(self.scheduler.job_done(start.job, self.clock(), finished=True))

    def _on_failed(self, job: int, message: str, kind: FailureKind) -> None:
        start = self._jobs.pop(job, None)
        self._plans.pop(job, None)
        if start is None:
            return
        self.preview.clear()
        self._fail(message)
        self._do(self.scheduler.job_done(start.job, self.clock(), finished=False))

    def _on_cancelled(self, job: int) -> None:
        start = self._jobs.pop(job, None)
        self._plans.pop(job, None)
        if start is not None:
            self._do(self.scheduler.job_done(start.job, self.clock(), finished=False))

    def _fail(self, message: str) -> None:
        log.info("live frame failed: %s", message)
        self.generation.dock.show_error(message)
        self._error = True

    # -- drawing -------------------------------------------------------------------------
    def _doc_rect(self) -> Rect:
        return self._doc.rect if self._doc is not None else Rect(0, 0, 0, 0)

    def _alpha(self, planned: Plan) -> np.ndarray | None:
        if planned.paste_mask is not None:  # inpaint, expand, an edit of a selection
            return planned.paste_mask
        return window_blend(planned.area, self._doc_rect())

    def _draw(self, frame: LiveFrame) -> None:
        """Blend ``frame`` into the live image (an inpaint frame replaces it: only its mask
        is new) and show it."""
        canvas = self._doc_rect()
        if self._image is None or frame.plan.paste_mask is not None:
            self._reset_image()
            self._scale = min(1.0, LIVE_MAX_SIDE / max(canvas.w, canvas.h, 1))
            self._image = QImage(
                max(1, round(canvas.w * self._scale)), max(1, round(canvas.h * self._scale)),
                QImage.Format.Format_ARGB32_Premultiplied,
            )
            self._image.fill(Qt.GlobalColor.transparent)
        area, s = frame.plan.area, self._scale
        picture = rgba_to_qimage(masked_preview(frame.image, frame.alpha))
        painter = QPainter(self._image)
        try:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(QRectF(area.x * s, area.y * s, area.w * s, area.h * s), picture)
        finally:
            painter.end()
        self.overlay.show_image(self._image, canvas)

    def _reset_image(self) -> None:
        self._image = None
        self.overlay.clear()

    def _clear(self) -> None:
        self._reset_image()
        self.preview.clear()
        self.frame = None
        self._window = None
        self._stroke_rect = None
        self.panel.apply_button.setEnabled(False)

    # -- apply / record --------------------------------------------------------------------
    def apply(self) -> PixelLayer | None:
        """Add the last finished frame to the document as one undoable ``generated``
        layer, exactly as an accepted result; ``None`` when there is no frame."""
        frame, doc = self.frame, self._doc
        if frame is None or doc is None:
            return None
        layer = place_result(
            doc, frame.plan, frame.image, metadata=frame.metadata,
            alpha=None if frame.plan.paste_mask is not None else frame.alpha,
        )
        self.window.show_message(f"Added {layer.name!r} from the live frame (undo removes it).")
        self.applied.emit(layer)
        return layer

    def _on_record_toggled(self, on: bool) -> None:
        self.recording = on
        if on:
            self.recorder.clear()
        self.panel.save_recording.setEnabled(len(self.recorder) > 0)

    def _record(self) -> None:
        """Keep what the canvas shows: the document under the live image."""
        if self._doc is not None and self._image is not None:
            self.recorder.add(shown_picture(self._doc, self._image), self.clock())
            self.panel.save_recording.setEnabled(True)

    def save_recording(self, path: str | Path) -> Path:
        """Write the recording (``.webp``: animated; otherwise a folder of PNG frames)."""
        return self.recorder.save(path)

    def save_recording_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save Live Recording", "live.webp", "Animated WebP (*.webp);;Folder of PNG frames (*)"
        )
        if not path:
            return
        try:
            saved = self.save_recording(path)
        except SaveError as error:
            self.generation.dock.show_error(str(error))
            return
        self.window.show_message(f"Saved {len(self.recorder)} live frames to {saved}.")

    # -- the state shown -------------------------------------------------------------------
    def _sync_toggle(self) -> None:
        for toggle in (self.panel.live_button, self.window.actions.get("live")):
            if toggle is not None and toggle.isChecked() != self.enabled:
                toggle.blockSignals(True)
                toggle.setChecked(self.enabled)
                toggle.blockSignals(False)

    def _show_state(self) -> None:
        if not self.enabled:
            state, text = "off", "Live: off"
        elif self.busy:
            state, text = "rendering", "● Live: rendering…"
            self._error = False
        elif self._error:
            state, text = "idle", "Live: stopped by an error — change something to try again"
        else:
            state = "idle"
            text = "○ Live: idle" + (f" — {self.scheduler.frame_s:.1f} s a frame" if self.frame else "")
        self.panel.set_state(text, busy=state == "rendering")
        self.badge.setText(text)
        self.badge.adjustSize()
        self.badge.setVisible(self.enabled)
        self._place_badge()
        if self._state != state:
            self._state = state
            self.state_changed.emit(state)

    def _place_badge(self) -> None:
        view = self.window.view
        self.badge.move(max(0, view.width() - self.badge.width() - 10), 10)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.window.view and event.type() == QEvent.Type.Resize:
            self._place_badge()
        return False


def install_live(generation: NormalGeneration) -> LiveController:
    """Add the live panel to the Generation dock, the Live and Apply actions to the
    Generate menu (Ctrl+L, Return), and follow the window's document."""
    window = generation.window
    panel = LivePanel()
    generation.dock.add_section(panel)
    live = LiveController(generation, panel)
    toggle = QAction("&Live", window)
    toggle.setObjectName("live")
    toggle.setCheckable(True)
    toggle.setShortcut(QKeySequence("Ctrl+L"))
    toggle.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    toggle.toggled.connect(live.set_enabled)
    window.addAction(toggle)
    window.add_action("generate", toggle, name="live")
    apply = QAction("&Apply Live Frame", window)
    apply.setObjectName("apply_live")
    apply.setShortcuts([QKeySequence("Return"), QKeySequence("Enter")])
    apply.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    apply.setEnabled(False)
    apply.triggered.connect(lambda _=False: live.apply())
    window.addAction(apply)
    window.add_action("generate", apply, name="apply_live")
    live.state_changed.connect(lambda _s: apply.setEnabled(live.enabled and live.frame is not None))
    live.frame_finished.connect(lambda _f: apply.setEnabled(live.enabled))
    generation.live = live
    window.document_replaced.connect(live.set_document)
    generation.models.models_changed.connect(lambda _entries: live._on_models_rescanned())
    live.set_document(window.document)
    return live

"""Live mode's controls: the toggle, its own settings, Apply, New seed, Record, the state
(and :func:`shown_picture`, what Record keeps of the canvas).

:class:`LivePanel` sits in the Generation dock under the normal settings. Live mode keeps
settings of its own (strength, steps, CFG, sampler), remembered between sessions apart
from the normal ones (:class:`LiveSettings`, saved under ``live/`` in the window
settings): a live frame wants fewer steps and a lower strength than a final render. The
state line says at a glance whether live mode is idle, rendering, or stopped, and how long
a frame takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from sfumato.canvas.model.document import Document
from sfumato.canvas.render.composite import flatten
from sfumato.desktop.generation_dock import cfg_box, sampler_box
from sfumato.desktop.settings import AppSettings
from sfumato.inference.fast_presets import FastPreset
from sfumato.vocabulary.kinds import Sampler

__all__ = ["LivePanel", "LiveSettings"]


@dataclass(frozen=True)
class LiveSettings:
    """Live mode's own generation settings (the prompt, model and seed are shared)."""

    strength: float = 0.6
    steps: int = 8
    cfg: float = 5.0
    sampler: Sampler = Sampler.DPMPP_2M_KARRAS

    @staticmethod
    def load(settings: AppSettings) -> LiveSettings:
        default = LiveSettings()
        sampler = settings.get_str("live/sampler", default.sampler.value)
        try:
            chosen = Sampler(sampler)
        except ValueError:
            chosen = default.sampler
        return LiveSettings(
            strength=min(1.0, max(0.0, settings.get_float("live/strength", default.strength))),
            steps=min(150, max(1, settings.get_int("live/steps", default.steps))),
            cfg=min(30.0, max(0.0, settings.get_float("live/cfg", default.cfg))),
            sampler=chosen,
        )

    def save(self, settings: AppSettings) -> None:
        settings.set("live/strength", self.strength)
        settings.set("live/steps", self.steps)
        settings.set("live/cfg", self.cfg)
        settings.set("live/sampler", self.sampler.value)


class LivePanel(QFrame):
    """See the module docstring. Signals: ``toggled(bool)``, ``settings_changed()``,
    ``apply_requested()``, ``new_seed_requested()``, ``record_toggled(bool)``,
    ``save_recording_requested()``."""

    toggled = Signal(bool)
    settings_changed = Signal()
    preset_chosen = Signal(object)  # FastPreset
    apply_requested = Signal()
    new_seed_requested = Signal()
    record_toggled = Signal(bool)
    save_recording_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("livePanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.live_button = QPushButton("Live")
        self.live_button.setObjectName("liveButton")
        self.live_button.setCheckable(True)
        self.live_button.setToolTip("Re-render the picture as you paint (Ctrl+L)")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Add the live frame as a layer (Return)")
        self.apply_button.setEnabled(False)
        self.new_seed_button = QPushButton("New seed")
        self.new_seed_button.setToolTip("Render the live frame from another seed")
        self.state = QLabel("Live: off")
        self.state.setObjectName("liveState")

        self.preset = QComboBox()
        self.preset.setObjectName("livePreset")
        self.preset.setToolTip(
            "How live frames are made with this model: a fast (distilled) model or LoRA is "
            "recognised from its files and gets the sampler, steps and guidance it was made for"
        )
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.05, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setDecimals(2)
        self.strength.setToolTip("How much a live frame may change the painting")
        self.steps = QSpinBox()
        self.steps.setRange(1, 150)
        self.steps.setToolTip("Steps of a live frame: fewer follow the brush faster")
        self.cfg = cfg_box()
        self.sampler = sampler_box()
        self.record = QCheckBox("Record")
        self.record.setToolTip("Keep every finished live frame, to save as an animation")
        self.save_recording = QPushButton("Save Recording…")
        self.save_recording.setEnabled(False)

        top = QHBoxLayout()
        top.addWidget(self.live_button, 1)
        top.addWidget(self.apply_button, 1)
        top.addWidget(self.new_seed_button)
        form = QFormLayout()
        form.addRow("Live preset", self.preset)
        form.addRow("Live strength", self.strength)
        form.addRow("Live steps", self.steps)
        form.addRow("Live CFG", self.cfg)
        form.addRow("Live sampler", self.sampler)
        record_row = QHBoxLayout()
        record_row.addWidget(self.record)
        record_row.addWidget(self.save_recording)
        record_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.state)
        layout.addLayout(form)
        layout.addLayout(record_row)

        self.set_settings(LiveSettings())
        self.live_button.toggled.connect(self.toggled)
        self.apply_button.clicked.connect(lambda _=False: self.apply_requested.emit())
        self.new_seed_button.clicked.connect(lambda _=False: self.new_seed_requested.emit())
        self.record.toggled.connect(self.record_toggled)
        self.save_recording.clicked.connect(lambda _=False: self.save_recording_requested.emit())
        for box in (self.strength, self.cfg):
            box.valueChanged.connect(lambda _v: self.settings_changed.emit())
        self.steps.valueChanged.connect(lambda _v: self.settings_changed.emit())
        self.sampler.currentIndexChanged.connect(lambda _i: self.settings_changed.emit())
        self.preset.activated.connect(self._preset_activated)

    def set_presets(self, presets: Sequence[FastPreset]) -> None:
        """Offer ``presets`` (best first) and show the first as chosen, without signals."""
        self.preset.blockSignals(True)
        try:
            self.preset.clear()
            for preset in presets:
                self.preset.addItem(preset.name, preset)
                if preset.evidence:
                    self.preset.setItemData(self.preset.count() - 1, preset.evidence, Qt.ItemDataRole.ToolTipRole)
            self.preset.setCurrentIndex(0)
        finally:
            self.preset.blockSignals(False)

    def _preset_activated(self, index: int) -> None:
        preset = self.preset.itemData(index)
        if isinstance(preset, FastPreset):
            self.preset_chosen.emit(preset)

    def settings(self) -> LiveSettings:
        sampler = self.sampler.currentData()
        return LiveSettings(
            strength=float(self.strength.value()),
            steps=int(self.steps.value()),
            cfg=float(self.cfg.value()),
            sampler=sampler if isinstance(sampler, Sampler) else Sampler.DEFAULT,
        )

    def set_settings(self, settings: LiveSettings) -> None:
        """Show ``settings`` without emitting ``settings_changed``."""
        widgets = (self.strength, self.steps, self.cfg, self.sampler)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.strength.setValue(settings.strength)
            self.steps.setValue(settings.steps)
            self.cfg.setValue(settings.cfg)
            self.sampler.setCurrentIndex(max(0, self.sampler.findData(settings.sampler)))
        finally:
            for widget in widgets:
                widget.blockSignals(False)

    def set_state(self, text: str, *, busy: bool) -> None:
        self.state.setText(text)
        self.state.setStyleSheet("color: #f0c040; font-weight: bold;" if busy else "")


def shown_picture(doc: Document, live: QImage) -> np.ndarray:
    """What the canvas shows in live mode, for the recording: the live image (a canvas-wide
    QImage, possibly smaller than the document) over the flattened document, uint8 RGB at
    the live image's size. The document is flattened only where frames left it showing."""
    rgba = live.convertToFormat(QImage.Format.Format_RGBA8888)
    raw = np.frombuffer(rgba.constBits(), np.uint8).reshape(rgba.height(), rgba.bytesPerLine() // 4, 4)
    pixels = raw[:, : rgba.width()].astype(np.float32) / 255.0
    if pixels[..., 3].min() < 1.0:
        under = flatten(doc, doc.rect)[..., :3]
        if under.shape[:2] != pixels.shape[:2]:
            under = cv2.resize(under, (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_AREA)
        alpha = pixels[..., 3:4]
        rgb = pixels[..., :3] * alpha + under.astype(np.float32) / 255.0 * (1 - alpha)
    else:
        rgb = pixels[..., :3]
    return np.rint(rgb * 255.0).astype(np.uint8)

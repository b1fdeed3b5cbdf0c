"""The Generation dock: prompt, model and sampling settings, the main button, progress.

The settings that belong to the picture (prompt, negative prompt, model, seed, steps,
CFG, strength, sampler) live in the document's :class:`~sfumato.canvas.model.document.Recipe`,
so they save with the .ora and come back on open. The dock binds both ways:

- document → widgets on :meth:`GenerationDock.set_document` and on every
  ``RecipeChanged`` (undo of a prompt edit updates the box), with widget signals blocked;
- widgets → document through ``editing.set_recipe(doc, merge_id=...)``: one merge id per field,
  so typing a prompt or dragging a spin box is one undo step ("Prompt", "Generation
  Settings"), not one per keystroke.

The batch size is not part of the recipe (it is how many tries, not what to make); it is
kept in the dock. A random seed is stored as ``seed = None`` (drawn at each run); the
seed actually used is shown next to the "reuse" button.

The main button's text names what it will do (Generate / Refine / Inpaint / Edit): the
controller calls :meth:`GenerationDock.set_mode_label` from the planner's cheap
:func:`~sfumato.planner.plan.detect_mode`. With an instruction-edit model
(:meth:`GenerationDock.model_edits`: FLUX.1 Kontext, Qwen-Image-Edit) the prompt box asks
for the change to make rather than a description of the picture.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator, QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document, DocumentReset, Recipe, RecipeChanged
from sfumato.desktop.prompt_editor import attach_prompt_editing
from sfumato.inference.catalog import BUILTIN_SOURCE, ModelEntry
from sfumato.inference.request import MAX_STEPS, FillMode, Sampler
from sfumato.planner.plan import model_edits
from sfumato.planner.recipe import (
    DEFAULT_CFG,
    DEFAULT_STEPS,
    DEFAULT_STRENGTH,
    MAX_SEED,
    recipe_fill,
)
from sfumato.planner.styles import Style, StyleBook
from sfumato.vocabulary.families import SUPPORTED_FAMILIES

log = logging.getLogger(__name__)

__all__ = ["GenerationDock"]

BUILTIN_PICKER_LABEL = "Built-in demo model (shapes and colours only)"
#: the prompt box's hint: a description of the picture, or (an edit model) the change to make
DESCRIBE_HINT = "Describe the picture (Ctrl+Enter generates)"
INSTRUCTION_HINT = "Describe the change: make it night, remove the lamp post… (Ctrl+Enter edits)"
#: the Fill box's entries: what an inpaint's masked area (an Expand's new canvas) starts from
FILL_LABELS = {
    FillMode.KEEP: "Original pixels (Expand: Telea)",
    FillMode.BLUR: "Blur of the surroundings",
    FillMode.TELEA: "Telea infill",
    FillMode.NAVIER_STOKES: "Navier–Stokes infill",
    FillMode.EDGE: "Extend the edges",
    FillMode.NEUTRAL: "Flat grey",
    FillMode.NOISE: "Noise",
}

_USER_FOCUS = (
    Qt.FocusReason.MouseFocusReason,
    Qt.FocusReason.TabFocusReason,
    Qt.FocusReason.BacktabFocusReason,
    Qt.FocusReason.ShortcutFocusReason,
)


class _PromptEdit(QPlainTextEdit):
    """A plain-text prompt box a few lines high; Ctrl+Enter is left to the window.
    ``focused`` fires when it gets the keyboard focus (the user means to generate). The
    syntax is highlighted and Ctrl+Up/Down step weights (:mod:`.prompt_editor`)."""

    focused = Signal()

    def __init__(self, placeholder: str, lines: int) -> None:
        super().__init__()
        self.setPlaceholderText(placeholder)
        self.setTabChangesFocus(True)
        height = self.fontMetrics().lineSpacing() * lines + 12
        self.setFixedHeight(height)
        self.editing = attach_prompt_editing(self)

    def focusInEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().focusInEvent(event)
        if event.reason() in _USER_FOCUS:  # not the window's own initial focus
            self.focused.emit()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and (
            event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            event.ignore()  # let the window's Generate shortcut have it
            return
        super().keyPressEvent(event)


def cfg_box() -> QDoubleSpinBox:
    """The guidance scale's box (the Generation dock's and live mode's)."""
    box = QDoubleSpinBox()
    box.setRange(0.0, 30.0)
    box.setSingleStep(0.5)
    box.setDecimals(1)
    box.setToolTip("Prompt guidance (CFG scale): higher follows the prompt more literally")
    return box


def sampler_box() -> QComboBox:
    """A sampler picker listing every :class:`Sampler` by the name other tools use."""
    box = QComboBox()
    for sampler in Sampler:
        box.addItem(sampler.label, sampler)
    return box


class RangeSpinBox(QSpinBox):
    """A spin box that says its range when typing leaves it (a plain ``QSpinBox`` just
    ignores the key, so "200" typed into a 1–150 box silently stays 20). ``refused``
    carries the sentence, shown as a tooltip at the box."""

    refused = Signal(str)

    def __init__(self, what: str) -> None:
        super().__init__()
        self._what = what

    def validate(self, text: str, pos: int) -> object:  # noqa: D102 - Qt API
        result = super().validate(text, pos)
        state = result[0] if isinstance(result, tuple) else result
        digits = text.strip().removeprefix(self.prefix()).removesuffix(self.suffix()).strip()
        if state == QValidator.State.Invalid and digits.isdigit():
            message = f"{self._what} go from {self.minimum()} to {self.maximum()}."
            QToolTip.showText(self.mapToGlobal(self.rect().bottomLeft()), message, self)
            self.refused.emit(message)
        return result


class GenerationDock(QWidget):
    """See the module docstring. Signals: ``generate_requested``, ``cancel_requested``,
    ``model_chosen(source)`` (the picker changed), ``error_dismissed``."""

    generate_requested = Signal()
    cancel_requested = Signal()
    model_chosen = Signal(object)  # str | None
    style_chosen = Signal(object)  # Style | None
    error_dismissed = Signal()
    tiled_refine_requested = Signal()  # the offer under a too-large Refine was taken

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generationDock")
        self.setWindowTitle("Generation")
        self._doc: Document | None = None
        self._loading = False  # pushing document values into widgets
        self._writing = False  # pushing widget values into the document
        self._last_seed: int | None = None
        self._entries: list[ModelEntry] = []

        self.prompt = _PromptEdit(DESCRIBE_HINT, 3)
        self.negative = _PromptEdit("What to avoid (negative prompt)", 2)
        self.style = QComboBox()
        self.style.setObjectName("stylePicker")
        self.style.setToolTip(
            "A style: a prompt template, negative, LoRAs, model and settings in one name "
            "(files in the configuration folder's styles/, built-ins included)"
        )
        self._styles: dict[str, Style] = {}
        self.model = QComboBox()
        self.model.setObjectName("modelPicker")
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(16)
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setDecimals(2)
        self.strength.setToolTip(
            "How much to change: 1 replaces the area; below 1 on a painted canvas refines it"
        )
        self.steps = RangeSpinBox("Steps")
        self.steps.setRange(1, MAX_STEPS)
        self.steps.setToolTip(f"Denoising steps, 1–{MAX_STEPS}: more is slower and rarely better past 50")
        self.cfg = cfg_box()
        self.sampler = sampler_box()
        self.fill = QComboBox()
        for fill, label in FILL_LABELS.items():
            self.fill.addItem(label, fill)
        self.fill.setToolTip(
            "What the masked area (an Expand's new canvas) starts from before the model paints it: "
            "the original pixels keep what is there, an infill removes it"
        )
        self.batch = RangeSpinBox("Batch sizes")
        self.batch.setRange(1, 16)
        self.batch.setToolTip("How many images to make at once (staged as a batch)")

        self.seed = QLineEdit("0")
        self.seed.setValidator(QRegularExpressionValidator(r"\d{0,10}"))
        self.seed.setMaximumWidth(110)
        self.random_seed = QCheckBox("Random")
        self.random_seed.setToolTip("Draw a new seed for every generation")
        self.reuse_seed = QToolButton()
        self.reuse_seed.setText("Reuse last")
        self.reuse_seed.setToolTip("Fix the seed to the one the last generation used")
        self.reuse_seed.setEnabled(False)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setDefault(False)
        self.generate_button.setMinimumHeight(32)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running generation (Esc)")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Idle")
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: palette(mid);")
        self.notes.hide()
        # a whole-canvas Refine beyond the model's size: why, and a link to refine in tiles
        self.tiled_offer = QLabel("")
        self.tiled_offer.setObjectName("tiledRefineOffer")
        self.tiled_offer.setWordWrap(True)
        self.tiled_offer.setTextFormat(Qt.TextFormat.RichText)
        self.tiled_offer.linkActivated.connect(lambda _link: self.tiled_refine_requested.emit())
        self.tiled_offer.hide()
        self.model_problems = QLabel("")
        self.model_problems.setObjectName("modelProblems")
        self.model_problems.setWordWrap(True)
        self.model_problems.setStyleSheet("color: #e0a040;")
        self.model_problems.hide()

        self.banner = QFrame()
        self.banner.setObjectName("generationError")
        self.banner.setStyleSheet(
            "#generationError { background: #5a1e1e; border-radius: 4px; }"
            " #generationError QLabel { color: #ffdede; }"
        )
        self.banner_text = QLabel("")
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dismiss = QToolButton()
        dismiss.setText("✕")
        dismiss.setToolTip("Dismiss")
        dismiss.clicked.connect(self.clear_error)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(8, 6, 4, 6)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.banner.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Style", self.style)
        form.addRow("Model", self.model)
        form.addRow("Strength", self.strength)
        form.addRow("Steps", self.steps)
        form.addRow("CFG", self.cfg)
        form.addRow("Sampler", self.sampler)
        form.addRow("Fill", self.fill)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed)
        seed_row.addWidget(self.random_seed)
        seed_row.addWidget(self.reuse_seed)
        seed_row.addStretch(1)
        form.addRow("Seed", seed_row)
        form.addRow("Batch", self.batch)

        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.prompt)
        layout.addWidget(self.negative)
        layout.addLayout(form)
        layout.addWidget(self.model_problems)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.banner)
        layout.addWidget(self.notes)
        layout.addWidget(self.tiled_offer)
        layout.addStretch(1)
        self._layout = layout
        self.show_fill(False)

        self.generate_button.clicked.connect(lambda _=False: self.generate_requested.emit())
        self.cancel_button.clicked.connect(lambda _=False: self.cancel_requested.emit())
        self.prompt.textChanged.connect(lambda: self._write(prompt=self.prompt.toPlainText()))
        self.negative.textChanged.connect(lambda: self._write(negative=self.negative.toPlainText()))
        self.strength.valueChanged.connect(lambda v: self._write(strength=float(v)))
        self.steps.valueChanged.connect(lambda v: self._write(steps=int(v)))
        self.cfg.valueChanged.connect(lambda v: self._write(cfg=float(v)))
        self.sampler.currentIndexChanged.connect(lambda _i: self._write(sampler=self.sampler_choice().value))
        self.fill.currentIndexChanged.connect(lambda _i: self._write(fill=recipe_fill(self.fill_choice())))
        self.seed.textEdited.connect(lambda _t: self._write_seed())
        self.random_seed.toggled.connect(self._random_toggled)
        self.reuse_seed.clicked.connect(lambda _=False: self.reuse_last_seed())
        self.model.currentIndexChanged.connect(self._model_changed)
        self.style.activated.connect(self._style_activated)
        self._load(Recipe())

    def set_styles(self, book: StyleBook) -> None:
        """Offer ``book``'s styles (and "No style"); files that could not be read are named
        in the tooltip."""
        self._styles = dict(book.styles)
        current = self._doc.recipe.style if self._doc is not None else None
        self.style.blockSignals(True)
        try:
            self.style.clear()
            self.style.addItem("No style", None)
            for name in self._styles:
                self.style.addItem(name, name)
        finally:
            self.style.blockSignals(False)
        if book.problems:
            self.style.setToolTip("Some style files could not be read:\n" + "\n".join(book.problems))
        self._select_style(current)

    def _select_style(self, name: str | None) -> None:
        self.style.blockSignals(True)
        try:
            index = self.style.findData(name) if name else 0
            if index < 0:
                self.style.addItem(f"{name} (from the document)", name)
                index = self.style.count() - 1
            self.style.setCurrentIndex(max(0, index))
        finally:
            self.style.blockSignals(False)

    def _style_activated(self, index: int) -> None:
        name = self.style.itemData(index)
        if name is None:
            self.style_chosen.emit(None)
        elif name in self._styles:
            self.style_chosen.emit(self._styles[name])

    def add_section(self, widget: QWidget) -> None:
        """Add ``widget`` (e.g. the live panel) under the buttons and the messages."""
        self._layout.insertWidget(self._layout.count() - 1, widget)

    # -- document binding ------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        if self._doc is not None:
            self._doc.changed.disconnect(self._on_document_event)
        self._doc = doc
        if doc is not None:
            doc.changed.connect(self._on_document_event)
            self._load(doc.recipe)

    def _on_document_event(self, event: object) -> None:
        if isinstance(event, RecipeChanged | DocumentReset) and not self._writing and self._doc is not None:
            self._load(self._doc.recipe)

    def _load(self, recipe: Recipe) -> None:
        """Show ``recipe`` (``None`` fields as the defaults) without writing back."""
        self._loading = True
        try:
            if self.prompt.toPlainText() != recipe.prompt:
                self.prompt.setPlainText(recipe.prompt)
            if self.negative.toPlainText() != recipe.negative:
                self.negative.setPlainText(recipe.negative)
            self.strength.setValue(DEFAULT_STRENGTH if recipe.strength is None else recipe.strength)
            self.steps.setValue(DEFAULT_STEPS if recipe.steps is None else recipe.steps)
            self.cfg.setValue(DEFAULT_CFG if recipe.cfg is None else recipe.cfg)
            try:
                sampler = Sampler.from_label(recipe.sampler) if recipe.sampler else Sampler.DEFAULT
            except Exception:  # noqa: BLE001 - an unknown name in a file: show the default
                sampler = Sampler.DEFAULT
            self.sampler.setCurrentIndex(max(0, self.sampler.findData(sampler)))
            fill = FillMode(recipe.fill) if recipe.fill in {f.value for f in FillMode} else FillMode.KEEP
            self.fill.setCurrentIndex(max(0, self.fill.findData(fill)))
            self.random_seed.setChecked(recipe.seed is None)
            self.seed.setEnabled(recipe.seed is not None)
            if recipe.seed is not None:
                self.seed.setText(str(recipe.seed))
            self._select_model(recipe.model)
            self._select_style(recipe.style)
        finally:
            self._loading = False

    def _write(self, **values: Any) -> None:
        if self._loading or self._doc is None:
            return
        key = "prompt" if set(values) <= {"prompt", "negative"} else "settings"
        self._writing = True
        try:
            editing.set_recipe(self._doc, merge_id=("generation-dock", key, tuple(values)), **values)
        except Exception as error:  # noqa: BLE001 - refused values stay in the widget
            log.info("recipe change refused: %s", error)
        finally:
            self._writing = False

    # -- seed ------------------------------------------------------------------------------
    def _seed_value(self) -> int:
        text = self.seed.text().strip()
        return min(int(text), MAX_SEED) if text else 0

    def _write_seed(self) -> None:
        if not self.random_seed.isChecked():
            self._write(seed=self._seed_value())

    def _random_toggled(self, random: bool) -> None:
        self.seed.setEnabled(not random)
        self._write(seed=None if random else self._seed_value())

    def set_last_seed(self, seed: int) -> None:
        """Remember the seed the last run used (shown in the reuse button's tip)."""
        self._last_seed = seed
        self.reuse_seed.setEnabled(True)
        self.reuse_seed.setToolTip(f"Fix the seed to {seed}, the one the last generation used")

    def use_seed(self, seed: int) -> None:
        """Fix the seed to ``seed`` (stored in the recipe)."""
        self.seed.setText(str(seed))
        if self.random_seed.isChecked():
            self.random_seed.setChecked(False)  # writes the seed
        else:
            self._write(seed=seed)

    def reuse_last_seed(self) -> None:
        if self._last_seed is not None:
            self.use_seed(self._last_seed)

    # -- models ----------------------------------------------------------------------------
    def set_models(self, entries: Sequence[ModelEntry]) -> None:
        """Fill the picker with checkpoint ``entries`` (the catalog's), keeping the choice."""
        self._entries = list(entries)
        current = self._doc.recipe.model if self._doc is not None else self.current_model()
        self._loading = True
        try:
            self.model.clear()
            for entry in self._entries:
                label = BUILTIN_PICKER_LABEL if entry.source == BUILTIN_SOURCE else entry.label
                family = f" ({entry.family})" if entry.family and entry.source != BUILTIN_SOURCE else ""
                self.model.addItem(label + family, entry.source)
                self.model.setItemData(self.model.count() - 1, entry.source, Qt.ItemDataRole.ToolTipRole)
            if not self._entries:
                self.model.addItem("No model found — add one in the Models dock", None)
        finally:
            self._loading = False
        self._select_model(current)

    def _select_model(self, source: str | None) -> None:
        was = self._loading
        self._loading = True
        try:
            if source is None:
                self.model.setCurrentIndex(0)
                return
            index = self.model.findData(source)
            if index < 0:
                self.model.addItem(f"{source} (from the document)", source)
                index = self.model.count() - 1
            self.model.setCurrentIndex(index)
        finally:
            self._loading = was

    def _model_changed(self, _index: int) -> None:
        self.prompt.setPlaceholderText(INSTRUCTION_HINT if self.model_edits() else DESCRIBE_HINT)
        source = self.current_model()
        self._write(model=source)
        if not self._loading:
            self.model_chosen.emit(source)

    def choose_model(self, source: str) -> None:
        """Select ``source`` in the picker (stored in the recipe like a user's pick)."""
        index = self.model.findData(source)
        if index < 0:
            self.model.addItem(source, source)
            index = self.model.count() - 1
        self.model.setCurrentIndex(index)

    def current_model(self) -> str | None:
        data = self.model.currentData()
        return str(data) if data else None

    def current_family(self) -> str | None:
        source = self.current_model()
        for entry in self._entries:
            if entry.source == source:
                return entry.family if entry.family in SUPPORTED_FAMILIES else None
        return None

    def model_edits(self) -> bool:
        """Whether the chosen model is made for instruction edits ("make it night")."""
        return model_edits(self.current_family())

    def sampler_choice(self) -> Sampler:
        """The sampler picked in the dock."""
        data = self.sampler.currentData()
        return data if isinstance(data, Sampler) else Sampler.DEFAULT

    def fill_choice(self) -> FillMode:
        """The fill picked in the dock."""
        data = self.fill.currentData()
        return data if isinstance(data, FillMode) else FillMode.KEEP

    def show_fill(self, used: bool) -> None:
        """Enable the Fill box when the button inpaints or expands (the only modes it
        changes); it stays in place otherwise, so the dock does not jump as the mode does."""
        self.fill.setEnabled(used)

    def overrides(self) -> dict[str, Any]:
        """The fields not kept in the recipe, for ``settings_from_recipe(**overrides)``:
        batch size, the model's family, and the model when the document names none."""
        return {"batch": self.batch.value(), "model": self.current_model(), "model_family": self.current_family()}

    # -- state shown -----------------------------------------------------------------------
    def set_mode_label(self, label: str) -> None:
        self.generate_button.setText(label)
        self.generate_button.setToolTip(f"{label} (Ctrl+Enter)")

    @property
    def mode_label(self) -> str:
        return self.generate_button.text()

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setRange(0, 0)  # indeterminate until the first step
            self.progress.setFormat(text or "Starting…")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat(text or "Idle")

    def set_progress(self, step: int, total: int) -> None:
        if total <= 0:
            return
        self.progress.setRange(0, total)
        self.progress.setValue(step)
        self.progress.setFormat(f"Step {step} / {total}")

    def show_model_problems(self, problems: Sequence[str]) -> None:
        """Say what the chosen model cannot do of what the document asks, before Generate
        is pressed (:func:`sfumato.planner.capabilities.document_problems`); the button
        waits until the document, the model or the sampler changes."""
        text = "\n".join(problems)
        if text == self.model_problems.text() and self.model_problems.isVisible() == bool(problems):
            return
        self.model_problems.setText(text)
        self.model_problems.setVisible(bool(problems))
        self.generate_button.setEnabled(not problems)
        self.generate_button.setToolTip(text or f"{self.mode_label} (Ctrl+Enter)")

    @property
    def problems_text(self) -> str:
        return self.model_problems.text() if not self.model_problems.isHidden() else ""

    def show_notes(self, notes: Sequence[str]) -> None:
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))

    def show_tiled_offer(self, reason: str | None) -> None:
        """Under a Refine too large for the model (``reason``, the planner's words), the
        link "Refine in tiles at full resolution"; ``None`` hides it."""
        text = "" if reason is None else (
            f"{html.escape(reason)} <a href=\"tiled-refine\">Refine in tiles at full resolution</a>")
        if text != self.tiled_offer.text():
            self.tiled_offer.setText(text)
        self.tiled_offer.setVisible(reason is not None)

    @property
    def tiled_offer_text(self) -> str:
        return self.tiled_offer.text() if not self.tiled_offer.isHidden() else ""

    def show_error(self, message: str) -> None:
        self.banner_text.setText(message)
        self.banner.show()

    def clear_error(self) -> None:
        if not self.banner.isHidden():
            self.banner.hide()
            self.error_dismissed.emit()

    @property
    def error_text(self) -> str:
        return "" if self.banner.isHidden() else self.banner_text.text()

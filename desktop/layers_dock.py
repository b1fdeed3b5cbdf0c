"""The Layers dock: the layer tree plus the active layer's properties.

The tree is a :class:`~sfumato.desktop.layer_model.LayerTreeModel` (drag to reorder and
into groups; check box = visibility; double-click a name to rename, a region's prompt
column to edit the prompt in place). Below it, the active layer's opacity, blend mode,
lock, role, and role settings: a region's prompt and negative prompt, a control layer's
kind, strength and range with a "From image" action, a reference layer's kind, strength
and range. Every change is an undoable command; widgets are refreshed from the document
with their signals blocked.

Image files dropped onto the dock become reference layers ("paint in the style of
this"), one undo step each; "Reference from image…" in the add menu does the same
through a file dialog. (Dropped anywhere else on the window, an image is imported as a
paint layer.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QObject,
    QSignalBlocker,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QDragEnterEvent, QDragMoveEvent, QDropEvent, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document, LayerPropertyChanged, RecipeChanged
from sfumato.canvas.model.layers import (
    ControlSettings,
    GroupLayer,
    Layer,
    PixelLayer,
    ReferenceSettings,
    Role,
)
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.desktop import layer_actions
from sfumato.desktop.layer_model import THUMB, LayerTreeModel
from sfumato.desktop.prompt_editor import attach_prompt_editing
from sfumato.vocabulary.kinds import ControlKind, ReferenceKind

log = logging.getLogger(__name__)

MIN_ROWS = 4  # the layer list shows at least this many rows, whatever the properties need
DOCK_WIDTH = 310  # the dock's preferred width (the user's own width is kept by the layout)
#: the files a drop onto the dock turns into reference layers
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".webp"})
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp)"
#: the roles a layer can be given from the window (``generated`` comes from Accept only)
CHOOSABLE_ROLES = (Role.PAINT, Role.INPAINT_MASK, Role.REGION, Role.CONTROL, Role.REFERENCE)
REFERENCE_KIND_TIPS = {
    ReferenceKind.STYLE: "Follow its colours, brushwork and mood, not its layout",
    ReferenceKind.COMPOSITION: "Follow its layout, not its style",
    ReferenceKind.FACE: "Keep this person's face",
    ReferenceKind.CONTENT: "Follow the picture as a whole",
}


def image_paths(mime: QMimeData) -> list[Path]:
    """The local image files (PNG, JPEG, WebP) in dropped data."""
    return [
        Path(url.toLocalFile()) for url in mime.urls()
        if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES
    ]


def control_image_from_document(doc: Document, kind: ControlKind) -> np.ndarray:
    """The visible picture run through ``kind``'s preprocessor, as document-sized opaque
    straight RGBA uint8 (what a control layer holds)."""
    from sfumato.canvas.render.composite import flatten
    from sfumato.inference.preprocess import preprocess

    rgb = np.ascontiguousarray(flatten(doc, background=(255, 255, 255, 255))[..., :3])
    out = preprocess(kind, rgb)
    alpha = np.full(out.shape[:2] + (1,), 255, np.uint8)
    return np.concatenate([out, alpha], axis=2)


class _PromptEdit(QPlainTextEdit):
    """A small multi-line prompt field that reports edits as they are typed; syntax
    highlighted, Ctrl+Up/Down step weights (:mod:`.prompt_editor`)."""

    editing_finished = Signal()

    def __init__(self, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(placeholder)
        self.setFixedHeight(56)
        self.setTabChangesFocus(True)
        self.editing = attach_prompt_editing(self)

    def focusOutEvent(self, event: object) -> None:  # noqa: N802 - Qt API
        self.editing_finished.emit()
        super().focusOutEvent(event)  # type: ignore[arg-type]

    def set_text_quietly(self, text: str) -> None:
        if self.toPlainText() != text:
            with QSignalBlocker(self):
                self.setPlainText(text)


class LayerProperties(QWidget):
    """Editors for the active layer; hidden rows for roles it doesn't have.

    ``message(text)`` reports an edit the document refused (a locked layer, ...);
    ``depth_requested()``: "From image" on a depth control layer (the window runs the
    depth estimator on its worker); ``pose_requested()``: "From image" on a pose layer
    (the window runs the pose estimator: :mod:`sfumato.desktop.pose_action`)."""

    message = Signal(str)
    depth_requested = Signal()
    pose_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._doc: Document | None = None
        self._layer: Layer | None = None
        self._merge = object()  # one undo step per continuous slider drag / typing burst

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity_label = QLabel("100%")
        self.opacity_label.setFixedWidth(40)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(self.opacity, 1)
        opacity_row.addWidget(self.opacity_label)
        self.blend = QComboBox()
        for mode in BlendMode:
            self.blend.addItem(mode.label, mode)
        self.locked = QCheckBox("Lock")
        self.role = QComboBox()
        self.role.setToolTip("What this layer means to the generator")
        for role in (*CHOOSABLE_ROLES, Role.GENERATED):
            self.role.addItem(layer_actions.ROLE_NAMES[role], role)
        role_items = self.role.model()
        assert isinstance(role_items, QStandardItemModel)
        generated_item = role_items.item(self.role.count() - 1)
        generated_item.setEnabled(False)  # shown for results, never chosen

        self.prompt = _PromptEdit("Prompt for this region")
        self.negative = QLineEdit()
        self.negative.setPlaceholderText("Negative prompt (optional)")
        self.include_prompt = QCheckBox("Add the main prompt")
        self.include_prompt.setToolTip(
            "Follow each region's prompt with the document's prompt (for every region of this document)"
        )
        self.effective = QLabel("")
        self.effective.setObjectName("effectiveRegionPrompt")
        self.effective.setWordWrap(True)
        self.effective.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.effective.setToolTip("The text this region generates from")

        self.kind = QComboBox()
        for kind in ControlKind:
            self.kind.addItem(kind.value.capitalize(), kind)
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 2.0)
        self.strength.setSingleStep(0.05)
        self.start = QDoubleSpinBox()
        self.start.setRange(0.0, 1.0)
        self.start.setSingleStep(0.05)
        self.end = QDoubleSpinBox()
        self.end.setRange(0.0, 1.0)
        self.end.setSingleStep(0.05)
        range_row = QHBoxLayout()
        range_row.addWidget(self.start)
        range_row.addWidget(QLabel("to"))
        range_row.addWidget(self.end)
        self.reference_kind = QComboBox()
        for rkind in ReferenceKind:
            self.reference_kind.addItem(rkind.value.capitalize(), rkind)
            self.reference_kind.setItemData(
                self.reference_kind.count() - 1, REFERENCE_KIND_TIPS[rkind], Qt.ItemDataRole.ToolTipRole
            )
        self.reference_kind.setToolTip("What the generation takes from this picture")
        self.from_image = QPushButton("From image")
        self.from_image.setToolTip(
            "Replace this control layer with the visible picture run through its preprocessor"
        )

        self.form = QFormLayout(self)
        self.form.setContentsMargins(4, 4, 4, 4)
        self.form.addRow("Opacity", opacity_row)
        self.form.addRow("Blend", self.blend)
        self.form.addRow("", self.locked)
        self.form.addRow("Role", self.role)
        self.form.addRow("Prompt", self.prompt)
        self.form.addRow("Negative", self.negative)
        self.form.addRow("", self.include_prompt)
        self.form.addRow("Generates", self.effective)
        self.form.addRow("Control", self.kind)
        self.form.addRow("Reference", self.reference_kind)
        self.form.addRow("Strength", self.strength)
        self.form.addRow("Range", range_row)
        self.form.addRow("", self.from_image)
        self._region_rows = [self.prompt, self.negative, self.include_prompt, self.effective]
        self._control_rows = [self.kind, self.from_image]
        self._reference_rows = [self.reference_kind]
        self._schedule_rows = [self.strength, range_row]  # control and reference layers

        self.opacity.valueChanged.connect(self._on_opacity)
        self.opacity.sliderReleased.connect(self._new_merge)
        self.blend.activated.connect(self._on_blend)
        self.locked.toggled.connect(lambda v: self._set("locked", bool(v), merge=False))
        self.prompt.textChanged.connect(lambda: self._set("prompt", self.prompt.toPlainText()))
        self.prompt.editing_finished.connect(self._new_merge)  # one undo step per edit
        self.negative.editingFinished.connect(self._new_merge)
        self.negative.textEdited.connect(lambda t: self._set("negative", t))
        self.include_prompt.toggled.connect(self._on_include_prompt)
        self.role.activated.connect(self._on_role)
        self.kind.activated.connect(lambda _i: self._set_control(kind=self.kind.currentData()))
        self.reference_kind.activated.connect(
            lambda _i: self._set_control(kind=self.reference_kind.currentData())
        )
        self.strength.valueChanged.connect(lambda v: self._set_control(strength=float(v)))
        self.start.valueChanged.connect(lambda v: self._set_control(start=float(v)))
        self.end.valueChanged.connect(lambda v: self._set_control(end=float(v)))
        self.from_image.clicked.connect(self.run_from_image)
        self.show_layer(None, None)

    # -- model → widgets -------------------------------------------------------------------
    def show_layer(self, doc: Document | None, layer: Layer | None) -> None:
        if layer is not self._layer:
            self._new_merge()
        self._doc, self._layer = doc, layer
        self.setEnabled(layer is not None)
        role = layer.role if isinstance(layer, PixelLayer) else None
        self._set_rows_visible(self._region_rows, role is Role.REGION)
        self._set_rows_visible(self._control_rows, role is Role.CONTROL)
        self._set_rows_visible(self._reference_rows, role is Role.REFERENCE)
        self._set_rows_visible(self._schedule_rows, role in (Role.CONTROL, Role.REFERENCE))
        self._set_rows_visible([self.role], role is not None)
        self.refresh()

    def _set_rows_visible(self, fields: Sequence[object], visible: bool) -> None:
        for f in fields:
            self.form.setRowVisible(f, visible)  # type: ignore[call-overload]

    def refresh(self) -> None:
        layer = self._layer
        if layer is None:
            return
        with QSignalBlocker(self.opacity), QSignalBlocker(self.blend), QSignalBlocker(self.locked):
            self.opacity.setValue(round(layer.opacity * 100))
            self.opacity_label.setText(f"{round(layer.opacity * 100)}%")
            self.blend.setCurrentIndex(max(0, self.blend.findData(layer.blend)))
            self.locked.setChecked(layer.locked)
        if isinstance(layer, PixelLayer) and layer.role is Role.REGION:
            self._show_effective_prompt(layer)
        if isinstance(layer, PixelLayer):
            self.prompt.set_text_quietly(layer.prompt)
            if self.negative.text() != layer.negative:
                with QSignalBlocker(self.negative):
                    self.negative.setText(layer.negative)
            c = layer.control or ControlSettings()
            r = layer.reference or ReferenceSettings()
            timing = r if layer.role is Role.REFERENCE else c
            with QSignalBlocker(self.kind), QSignalBlocker(self.strength), QSignalBlocker(
                self.start
            ), QSignalBlocker(self.end), QSignalBlocker(self.role), QSignalBlocker(self.reference_kind):
                self.role.setCurrentIndex(max(0, self.role.findData(layer.role)))
                self.kind.setCurrentIndex(max(0, self.kind.findData(c.kind)))
                self.reference_kind.setCurrentIndex(max(0, self.reference_kind.findData(r.kind)))
                self.strength.setValue(timing.strength)
                self.start.setValue(timing.start)
                self.end.setValue(timing.end)

    def _show_effective_prompt(self, layer: PixelLayer) -> None:
        """What the region generates from, as the planner will build it."""
        from sfumato.planner.regions import region_prompt

        recipe = self._doc.recipe if self._doc is not None else None
        include = recipe is None or recipe.regions_include_prompt is not False
        with QSignalBlocker(self.include_prompt):
            self.include_prompt.setChecked(include)
        text = region_prompt(layer.prompt, recipe.prompt if recipe else "", include)
        negative = region_prompt(layer.negative, recipe.negative if recipe else "", include)
        shown = f"“{text}”" if text else "nothing: a region without a prompt is left out"
        if negative:
            shown += f"\nnot: “{negative}”"
        self.effective.setText(shown)

    # -- widgets → model -------------------------------------------------------------------
    def _on_include_prompt(self, checked: bool) -> None:
        if self._doc is None:
            return
        try:
            editing.set_recipe(self._doc, regions_include_prompt=bool(checked))
        except Exception as exc:  # noqa: BLE001 - a refused edit becomes a message
            self.message.emit(f"Cannot change the regions' prompts: {exc}")

    def _new_merge(self) -> None:
        self._merge = object()

    def _set(self, name: str, value: object, merge: bool = True) -> None:
        if self._doc is None or self._layer is None:
            return
        try:
            layer_actions.set_property(
                self._doc, self._layer, name, value, self._merge if merge else None
            )
        except Exception as exc:  # noqa: BLE001 - shown to the user, model unchanged
            log.info("could not set %s: %s", name, exc)
            self.message.emit(f"Cannot change {name}: {exc}")
            self.refresh()

    def _on_opacity(self, value: int) -> None:
        self.opacity_label.setText(f"{value}%")
        self._set("opacity", value / 100.0)

    def _on_blend(self, _index: int) -> None:
        self._set("blend", self.blend.currentData(), merge=False)

    def _on_role(self, _index: int) -> None:
        role = self.role.currentData()
        layer = self._layer
        if not isinstance(layer, PixelLayer) or not isinstance(role, Role) or role is layer.role:
            return
        self._set("role", role, merge=False)
        self.show_layer(self._doc, layer)  # the rows of the new role

    def _set_control(self, **changes: object) -> None:
        """Change the control settings of a control layer, the reference settings of a
        reference layer (the strength and range editors serve both)."""
        layer = self._layer
        if not isinstance(layer, PixelLayer):
            return
        from dataclasses import replace

        if layer.role is Role.REFERENCE:
            self._set("reference", replace(layer.reference or ReferenceSettings(), **changes))  # type: ignore[arg-type]
            return
        current = layer.control or ControlSettings()
        self._set("control", replace(current, **changes))  # type: ignore[arg-type]

    def run_from_image(self) -> None:
        layer = self._layer
        if self._doc is None or not isinstance(layer, PixelLayer) or layer.role is not Role.CONTROL:
            return
        kind = (layer.control or ControlSettings()).kind
        if kind is ControlKind.DEPTH:
            self.depth_requested.emit()  # a model's work: the window sends it to the worker
            return
        if kind is ControlKind.POSE:  # the pixels of a pose layer are drawn from its skeleton
            self.pose_requested.emit()  # a model's work: the window sends it to the worker
            return
        rgba = control_image_from_document(self._doc, kind)
        if layer.x or layer.y:
            editing.set_offset(self._doc, layer, 0, 0)
        layer_actions.put_layer_pixels(self._doc, layer, rgba, f"Control From Image ({kind.value})")


class LayersDock(QWidget):
    """The Layers panel; mount it with ``MainWindow.add_dock``."""

    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layersDock")
        self._doc: Document | None = None
        self.model = LayerTreeModel(self)

        self.tree = QTreeView()
        self.tree.setModel(self.model)
        self.tree.setHeaderHidden(False)
        self.tree.header().setStretchLastSection(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(0, 170)
        self.tree.setIconSize(QSize(THUMB, THUMB))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.tree.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.tree.setDragEnabled(True)
        self.tree.setAcceptDrops(True)
        self.tree.setDropIndicatorShown(True)
        self.tree.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.selectionModel().currentChanged.connect(self._on_current)

        self.properties = LayerProperties()
        self.properties.message.connect(self.message)
        self.depth_requested = self.properties.depth_requested
        self.pose_requested = self.properties.pose_requested

        self.add_actions: dict[Role | None, QAction] = {}
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        add_menu = QMenu(self)
        for role, text in (
            (Role.PAINT, "Paint layer"),
            (None, "Group"),
            (Role.INPAINT_MASK, "Inpaint mask"),
            (Role.REGION, "Region (prompt)"),
            (Role.CONTROL, "Control (sketch)"),
            (Role.REFERENCE, "Reference (picture to follow)"),
        ):
            action = QAction(f"Add {text}", self)
            action.triggered.connect(lambda _=False, r=role: self.add_layer(r))
            add_menu.addAction(action)
            self.add_actions[role] = action
        self.reference_from_image = QAction("New Reference Layer from Image…", self)
        self.reference_from_image.setToolTip(
            "Add a picture to follow (style, composition, a face); or drop image files on the Layers dock"
        )
        self.reference_from_image.triggered.connect(lambda: self.add_reference_from_file())
        add_menu.addAction(self.reference_from_image)
        add_button = QToolButton()
        add_button.setText("+ Add")
        add_button.setToolTip("Add a layer")
        add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        add_button.setMenu(add_menu)
        self.add_button = add_button
        buttons.addWidget(add_button)
        for text, tip, slot in (
            ("Paint", "Add a paint layer", lambda: self.add_layer(Role.PAINT)),
            ("Region", "Add a region layer (paint where its prompt applies)", lambda: self.add_layer(Role.REGION)),
            ("Up", "Move the layer up", lambda: self.move_active(-1)),
            ("Down", "Move the layer down", lambda: self.move_active(1)),
            ("Delete", "Delete the layer", self.delete_active),
        ):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addStretch(1)

        # The layer list keeps its height when the properties grow (a region's prompt, a
        # control's settings): they scroll in their own area under a splitter, and the
        # list never shrinks below MIN_ROWS rows.
        self.tree.setMinimumHeight(MIN_ROWS * (THUMB + 4) + self.tree.header().sizeHint().height())
        self.properties_area = QScrollArea()
        self.properties_area.setWidget(self.properties)
        self.properties_area.setWidgetResizable(True)
        self.properties_area.setFrameShape(QFrame.Shape.NoFrame)
        self.properties_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(self.properties_area)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.splitter, 1)
        self.model.active_layer_changed.connect(self._show_active)
        self.model.modelReset.connect(self._after_reset)
        # Image files dropped on the dock (the list included) become reference layers; the
        # list's own drags (reordering) go on as before.
        self.setAcceptDrops(True)
        self.tree.viewport().installEventFilter(self)
        self._last_dir = ""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        """A size that does not follow the content: the main window sizes docks from their
        hints, so a hint that grew with a region's prompt field (or the list's scroll bar)
        would widen the dock and shift the canvas sideways whenever a layer is chosen."""
        return QSize(DOCK_WIDTH, 420)

    # -- document --------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        if self._doc is not None:
            self._doc.changed.disconnect(self._on_event)
        self._doc = doc
        self.model.set_document(doc)
        if doc is not None:
            doc.changed.connect(self._on_event)
        self.tree.expandAll()
        self._show_active(doc.active if doc else None)

    def _on_event(self, event: object) -> None:
        if self._doc is None:
            return
        # A region's resulting text (shown under its prompt) includes the main prompt.
        active_changed = isinstance(event, LayerPropertyChanged) and event.layer is self._doc.active
        if active_changed and isinstance(event, LayerPropertyChanged) and event.name == "role":
            self.properties.show_layer(self._doc, self._doc.active)  # the new role's rows
        elif active_changed or isinstance(event, RecipeChanged):
            self.properties.refresh()

    def _after_reset(self) -> None:
        self.tree.expandAll()

    def _show_active(self, layer: Layer | None) -> None:
        self.properties.show_layer(self._doc, layer)
        index = self.model.index_of(layer) if layer is not None else QModelIndex()
        if index != self.tree.currentIndex():
            with QSignalBlocker(self.tree.selectionModel()):
                self.tree.selectionModel().setCurrentIndex(
                    index,
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows,
                )
            self.tree.viewport().update()

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._doc is not None:
            self._doc.set_active(self.model.layer(current))

    # -- actions ---------------------------------------------------------------------------
    def add_layer(self, role: Role | None) -> Layer | None:
        """Add a paint/mask/region/control layer, or a group for ``None``; undoable."""
        if self._doc is None:
            return None
        return layer_actions.add_layer(self._doc, role)

    def _guard(self, what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a refused edit is a message, not a crash
            log.info("%s refused: %s", what, exc)
            self.message.emit(f"Cannot {what}: {exc}")

    def delete_active(self) -> None:
        doc = self._doc
        if doc is not None and doc.active is not None:
            active = doc.active
            self._guard("delete the layer", lambda: layer_actions.remove_layer(doc, active))

    def move_active(self, delta: int) -> None:
        """Move the active layer up (-1) or down (+1) among its siblings."""
        doc = self._doc
        if doc is None or doc.active is None or doc.active.parent is None:
            return
        parent, index = doc.index_of(doc.active)
        target = index + delta
        if 0 <= target < len(parent.children):
            active = doc.active
            self._guard("move the layer", lambda: layer_actions.move_layer(doc, active, parent, target))

    # -- reference pictures ----------------------------------------------------------------
    def add_reference_images(self, paths: Sequence[Path]) -> list[PixelLayer]:
        """Add each image file as a reference layer above the active layer (one undo step
        each); a file that cannot be read is reported, the others are still added."""
        doc = self._doc
        added: list[PixelLayer] = []
        if doc is None:
            return added
        for path in paths:
            try:
                added.append(layer_actions.add_reference_image(doc, path))
            except Exception as exc:  # noqa: BLE001 - a bad file is a message, not a crash
                log.info("reference from %s refused: %s", path, exc)
                self.message.emit(f"Cannot use {path.name} as a reference: {exc}")
        if added:
            names = ", ".join(layer.name for layer in added)
            self.message.emit(f"Added reference layer {names}")
        return added

    def add_reference_from_file(self, path: Path | None = None) -> PixelLayer | None:
        """"New reference layer from image…": a file dialog, unless ``path`` is given."""
        if self._doc is None:
            return None
        if path is None:
            name, _ = QFileDialog.getOpenFileName(self, "New reference layer from image", self._last_dir, IMAGE_FILTER)
            if not name:
                return None
            path = Path(name)
            self._last_dir = str(path.parent)
        added = self.add_reference_images([path])
        return added[0] if added else None

    def _drop_target(self, event: QEvent) -> bool:
        """Handle a drag of image files over the dock; ``True`` when it was one."""
        if not isinstance(event, QDragEnterEvent | QDragMoveEvent | QDropEvent):
            return False
        if self._doc is None or not image_paths(event.mimeData()):
            return False
        if isinstance(event, QDragEnterEvent | QDragMoveEvent):
            event.acceptProposedAction()
            return True
        event.acceptProposedAction()
        self.add_reference_images(image_paths(event.mimeData()))
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.tree.viewport() and event.type() in (
            QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop
        ) and self._drop_target(event):
            return True
        return super().eventFilter(watched, event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if not self._drop_target(event):
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt API
        if not self._drop_target(event):
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        if not self._drop_target(event):
            super().dropEvent(event)

    def set_role(self, layer: PixelLayer, role: Role) -> None:
        """Give ``layer`` another role (the context menu's Role submenu); undoable."""
        doc = self._doc
        if doc is not None:
            self._guard("change the role", lambda: layer_actions.set_role(doc, layer, role))
            if layer is doc.active:
                self.properties.show_layer(doc, layer)

    def _context_menu(self, pos: object) -> None:
        index = self.tree.indexAt(pos)  # type: ignore[arg-type]
        layer = self.model.layer(index)
        menu = QMenu(self)
        for action in self.add_actions.values():
            menu.addAction(action)
        if layer is not None and self._doc is not None:
            menu.addSeparator()
            doc = self._doc
            menu.addAction("Duplicate", lambda: self._guard("duplicate", lambda: editing.duplicate_layer(doc, layer)))
            if isinstance(layer, PixelLayer):
                from sfumato.canvas.paint.selection import select_layer_alpha

                menu.addAction("Merge Down", lambda: self._guard("merge down", lambda: editing.merge_down(doc, layer)))
                menu.addAction("Select Opaque Pixels",
                               lambda: self._guard("select", lambda: select_layer_alpha(doc, layer)))
            if isinstance(layer, PixelLayer) and layer.role is Role.CONTROL:
                menu.addAction("Control from image", self.properties.run_from_image)
            if isinstance(layer, PixelLayer):
                roles = menu.addMenu("Role")
                for role in CHOOSABLE_ROLES:
                    action = roles.addAction(layer_actions.ROLE_NAMES[role], partial(self.set_role, layer, role))
                    action.setCheckable(True)
                    action.setChecked(layer.role is role)
            menu.addAction("Delete", lambda: self._guard("delete", lambda: layer_actions.remove_layer(doc, layer)))
        menu.exec(self.tree.viewport().mapToGlobal(pos))  # type: ignore[arg-type]

    def active_group(self) -> GroupLayer | None:
        active = self._doc.active if self._doc else None
        return active if isinstance(active, GroupLayer) else None

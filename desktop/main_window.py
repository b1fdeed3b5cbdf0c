"""The main window: canvas in the centre, docks around it, menus, toolbar, status bar.

Extension points (for the generation, history and models docks):

- ``window.add_dock(widget, area, title=..., name=...) -> QDockWidget`` mounts a dock,
  gives it an object name (so the layout is remembered) and a toggle in View ▸ Docks.
- ``window.actions[name]`` holds every ``QAction`` by name ("generate", "cancel", "undo",
  ...); ``window.add_action(menu_name, action, toolbar=False)`` adds more; menus are in
  ``window.menus`` ("file", "edit", "view", "layer", "select", "tools", "generate", "help").
- ``window.install_generation_controller(controller)`` (a :class:`GenerationSide`)
  enables the Generate action (Ctrl+Enter) and routes Esc to ``controller.cancel()`` when
  no canvas interaction is in progress; ``controller.shutdown()`` runs when the window
  closes. Call it once, after the window is built.
- ``window.view.add_overlay(fn, z)`` draws on the canvas (see :mod:`canvas_view`).
- Menus and toolbars are laid out by action name in :mod:`window_menus`.
- ``window.document_replaced`` (Qt signal, the new :class:`Document`) fires whenever a
  file is opened or a new document made; ``window.document`` is the current one.

No business logic lives here: edits go through :mod:`layer_actions` and the canvas
commands, files through :class:`~sfumato.desktop.files.DocumentFiles`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QWidget,
)
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document, DocumentReset, RecipeChanged
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.history import HistoryChanged
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.paint import selection
from sfumato.canvas.recovery.recovery import Recovered
from sfumato.desktop import canvas_size_dialog, help_menu, layer_actions
from sfumato.desktop.brush_panel import BrushPanel
from sfumato.desktop.canvas_view import CanvasView
from sfumato.desktop.depth_action import DepthFromImage
from sfumato.desktop.files import DocumentFiles, new_document
from sfumato.desktop.journal_keeper import JournalKeeper
from sfumato.desktop.layers_dock import LayersDock
from sfumato.desktop.pose_action import PoseFromImage
from sfumato.desktop.recovery_dialog import offer_recovery
from sfumato.desktop.selection_overlay import SelectionOverlay
from sfumato.desktop.settings import AppSettings
from sfumato.desktop.tool_controller import ToolController
from sfumato.desktop.tool_settings import ToolSettings
from sfumato.desktop.tools import ToolError
from sfumato.desktop.viewport import Viewport
from sfumato.desktop.window_menus import (
    TOOL_SHORTCUTS,
    build_menu_bar,
    build_toolbars,
    fill_recent_menu,
    make_action,
    tool_action_name,
)

log = logging.getLogger(__name__)

DockArea = Qt.DockWidgetArea

SETTINGS_SAVE_DELAY_MS = 500  # tool and generation settings reach the disk this long after a change


class GenerationSide(Protocol):
    """What the window needs from the generation side (installed by its owner: the real
    one is :class:`sfumato.desktop.generation_controller.GenerationController`)."""

    def generate(self) -> None: ...

    def cancel(self) -> bool:
        """Cancel a running job; True when there was one."""
        ...

    def shutdown(self) -> None:
        """Stop the worker cleanly; called when the window closes."""
        ...


class MainWindow(QMainWindow):
    document_replaced = Signal(object)  # Document
    first_paint = Signal()  # the canvas has drawn the document for the first time

    def __init__(self, settings: AppSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sfumatoMainWindow")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else AppSettings()
        self.tool_settings = ToolSettings(self)
        self.tool_settings.load(self.settings)
        self._document: Document | None = None
        self._generation: GenerationSide | None = None

        self.view = CanvasView(self)
        self.setCentralWidget(self.view)
        self.tools = ToolController(self.tool_settings, lambda: self._document, self)
        self.view.set_tool_provider(self.tools)
        self.tools.message.connect(self.show_message)
        self.tools.repaint_requested.connect(
            lambda rect: self.view.update() if rect is None else self.view.update_document_rect(rect)
        )
        self.tool_settings.tool_changed.connect(lambda _t: self.view.refresh_cursor())
        self.tool_settings.changed.connect(lambda _v: self.view.refresh_cursor())
        self.selection_overlay = SelectionOverlay(self.view)

        self.depth_job = DepthFromImage(lambda: getattr(self._generation, "worker", None), self)
        self.depth_job.message.connect(self.show_message)
        self.pose_job = PoseFromImage(lambda: getattr(self._generation, "worker", None), self)
        self.pose_job.message.connect(self.show_message)

        self.files = DocumentFiles(self, self.settings, lambda: self._document)
        self.files.document_opened.connect(self.set_document)
        self.files.path_changed.connect(lambda _p: self._update_title())
        self.files.recent_changed.connect(self._fill_recent_menu)
        self.files.message.connect(self.show_message)

        self.actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        self.docks: dict[str, QDockWidget] = {}
        self._build_status_bar()
        self._build_actions()
        self._build_menus()
        self._build_toolbars()

        self.layers_dock = LayersDock()
        self.add_dock(self.layers_dock, DockArea.RightDockWidgetArea, title="Layers", name="layers")
        self.layers_dock.message.connect(self.show_message)
        self.layers_dock.depth_requested.connect(self.depth_from_image)
        self.layers_dock.pose_requested.connect(self.pose_from_image)
        self.brush_panel = BrushPanel(self.tool_settings)
        self.add_dock(self.brush_panel, DockArea.RightDockWidgetArea, title="Brush", name="brush")
        self.view.viewport_changed.connect(self._show_zoom)
        self.view.cursor_moved.connect(self._show_cursor)
        self.view.cancel_requested.connect(self.cancel)
        self.view.tool_failed.connect(self.show_message)
        self.view.first_painted.connect(self.first_paint)

        # Tool and generation settings and the dock layout reach the disk half a second
        # after they change, not only at exit: a crash keeps the brush, the colour, the
        # prompt and the docks where the artist put them.
        self._layout_dirty = False
        self._settings_timer = QTimer(self)
        self._settings_timer.setSingleShot(True)
        self._settings_timer.setInterval(SETTINGS_SAVE_DELAY_MS)
        self._settings_timer.timeout.connect(self.save_settings)
        self.tool_settings.changed.connect(lambda _v: self._settings_timer.start())
        self.tool_settings.tool_changed.connect(lambda _t: self._settings_timer.start())

        self.journals = JournalKeeper(self.statusBar(), self)
        self.files.path_changed.connect(self.journals.set_source)
        self.files.saved.connect(self.journals.saved)
        self.set_document(new_document(recipe=self.settings.last_recipe()))
        self._restore_layout()
        self._update_title()

    # -- extension API ---------------------------------------------------------------------
    def add_dock(
        self,
        widget: QWidget,
        area: Qt.DockWidgetArea = DockArea.RightDockWidgetArea,
        *,
        title: str | None = None,
        name: str | None = None,
        tabify_with: str | None = None,
    ) -> QDockWidget:
        """Mount ``widget`` in a dock; ``name`` (default from the title) keys ``self.docks``
        and the saved layout; ``tabify_with`` stacks it as a tab on an existing dock."""
        title = title or widget.windowTitle() or widget.objectName() or "Panel"
        name = name or title.lower().replace(" ", "_")
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if tabify_with is not None and tabify_with in self.docks:
            self.tabifyDockWidget(self.docks[tabify_with], dock)
        self.docks[name] = dock
        self.menus["docks"].addAction(dock.toggleViewAction())
        for signal in (dock.dockLocationChanged, dock.topLevelChanged, dock.visibilityChanged):
            signal.connect(self._layout_changed)
        return dock

    def _layout_changed(self, *_args: object) -> None:
        """A dock moved, floated, or was shown or hidden: saved with the other settings."""
        if self.isVisible():
            self._layout_dirty = True
            self._settings_timer.start()

    def add_action(self, menu: str, action: QAction, *, name: str | None = None, toolbar: bool = False) -> QAction:
        """Register ``action`` under ``name`` and append it to ``self.menus[menu]``."""
        self.actions[name or action.objectName() or action.text()] = action
        self.menus[menu].addAction(action)
        if toolbar:
            self.toolbar.addAction(action)
        return action

    def install_generation_controller(self, controller: GenerationSide) -> None:
        """Wire Generate (Ctrl+Enter) and cancel (Esc) to ``controller``."""
        self._generation = controller
        action = self.actions["generate"]
        action.setEnabled(True)
        action.setToolTip("Generate (Ctrl+Enter)")

    @property
    def generation_controller(self) -> GenerationSide | None:
        return self._generation

    # -- document --------------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self._document

    def set_document(self, doc: Document) -> None:
        """Show ``doc`` in the view and docks (replacing the current one)."""
        self.tools.cancel_all()
        if self._document is not None:
            self._document.history.changed.disconnect(self._on_history)
        if self._document is not None:
            self._document.changed.disconnect(self._on_document_event)
        self._document = doc
        doc.history.changed.connect(self._on_history)
        doc.changed.connect(self._on_document_event)
        if doc.active is None:
            doc.set_active(next(doc.pixel_layers(Role.PAINT), None))
        self.view.set_document(doc)
        self.view.set_overlay_layers(self.actions["show_ai_layers"].isChecked())
        self.layers_dock.set_document(doc)
        self.selection_overlay.set_document(doc)
        self._size_label.setText(f"{doc.width} × {doc.height}")
        self._on_history(None)
        self.journals.follow(doc, self.files.path)
        self.document_replaced.emit(doc)

    def adopt_recovered(self, recovered: Recovered, path: Path | None) -> None:
        """Show a document recovered from a crash: modified, under its original path (the
        file itself is not touched until the artist saves)."""
        self.set_document(recovered.doc)
        self.files.set_path(path)
        if self.journals.journal is not None:
            self.journals.journal.flush()  # on disk before the old journal is removed
        torn = " (the change the crash cut short is left out)" if recovered.torn else ""
        self.show_message(f"Recovered {recovered.name}: {recovered.records - 1} change(s){torn}")

    def _on_document_event(self, event: object) -> None:
        if isinstance(event, RecipeChanged):
            self._settings_timer.start()
        elif isinstance(event, DocumentReset) and self._document is not None:  # resized
            self._size_label.setText(f"{self._document.width} × {self._document.height}")

    def _on_history(self, _event: HistoryChanged | None) -> None:
        doc = self._document
        if doc is None:
            return
        undo, redo = self.actions["undo"], self.actions["redo"]
        undo.setEnabled(doc.history.can_undo)
        redo.setEnabled(doc.history.can_redo)
        undo.setText(f"&Undo {doc.history.undo_label or ''}".rstrip())
        redo.setText(f"&Redo {doc.history.redo_label or ''}".rstrip())
        undo.setIconText("Undo")
        redo.setIconText("Redo")
        self._update_title()

    def _update_title(self) -> None:
        name = self.files.path.name if self.files.path else "Untitled"
        self.setWindowModified(self.files.is_modified())
        self.setWindowTitle(f"{name}[*] — Sfumato")

    # -- building ----------------------------------------------------------------------------
    def _action(
        self,
        name: str,
        text: str,
        slot: Callable[[], object] | None = None,
        shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
        tip: str | None = None,
        enabled: bool = True,
    ) -> QAction:
        action = make_action(self, name, text, slot, shortcut, tip, enabled)
        self.actions[name] = action
        return action

    def _build_actions(self) -> None:
        """Every action of the window, bound to its command (where each shows:
        :mod:`window_menus`)."""
        a = self._action
        a("new", "&New", self.files.new, QKeySequence.StandardKey.New)
        a("open", "&Open…", self.files.open, QKeySequence.StandardKey.Open)
        a("save", "&Save", self.files.save, QKeySequence.StandardKey.Save)
        a("save_as", "Save &As…", self.files.save_as, "Ctrl+Shift+S")
        a("import", "&Import Image as Layer…", self.files.import_layer, "Ctrl+Shift+I")
        a("export", "&Export…", self.files.export, "Ctrl+Shift+E")
        a("recover", "Recover Unsaved &Work…", lambda: offer_recovery(self, self.adopt_recovered, when_empty=True))
        a("quit", "&Quit", self.close, QKeySequence.StandardKey.Quit)

        a("undo", "&Undo", self.undo, "Ctrl+Z")
        a("redo", "&Redo", self.redo, QKeySequence("Ctrl+Shift+Z"))
        self.actions["redo"].setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        a("copy", "&Copy", self.files.copy, QKeySequence.StandardKey.Copy,
          "Copy the active layer (inside the selection) to the clipboard")
        a("copy_merged", "Copy &Merged", lambda: self.files.copy(merged=True), "Ctrl+Shift+C",
          "Copy the visible picture (inside the selection) to the clipboard")
        a("paste", "&Paste as Layer", self.files.paste, QKeySequence.StandardKey.Paste)
        a("clear", "C&lear Layer", self.clear_layer, QKeySequence.StandardKey.Delete,
          "Clear the active layer (only the selection, when there is one)")
        a("cancel", "Cancel", self.cancel, "Esc", "Cancel the current stroke, selection drag or generation")

        a("show_ai_layers", "Show &Masks and Regions", self.toggle_ai_layers, "Ctrl+H",
          "Tint inpaint masks, regions and control sketches over the picture")
        self.actions["show_ai_layers"].setCheckable(True)
        self.actions["show_ai_layers"].setChecked(True)
        a("fit", "&Fit to Window", self.view.fit, "Ctrl+0")
        a("actual", "&100%", self.view.actual_pixels, "Ctrl+1")
        a("zoom_in", "Zoom &In", lambda: self.view.zoom_by_steps(1), QKeySequence.StandardKey.ZoomIn)
        a("zoom_out", "Zoom &Out", lambda: self.view.zoom_by_steps(-1), QKeySequence.StandardKey.ZoomOut)

        a("select_all", "Select &All", self.select_all, QKeySequence.StandardKey.SelectAll)
        a("deselect", "&Deselect", self.deselect, "Ctrl+Shift+A")
        a("invert_selection", "&Invert Selection", self.invert_selection, "Ctrl+Alt+I")
        a("grow_selection", "&Grow Selection…", self.grow_selection)
        a("shrink_selection", "&Shrink Selection…", self.shrink_selection)
        a("feather_selection", "&Feather Selection…", self.feather_selection)

        a("size_down", "Smaller Brush", lambda: self.tool_settings.scale_size(1 / 1.25), "[")
        a("size_up", "Bigger Brush", lambda: self.tool_settings.scale_size(1.25), "]")

        a("generate", "&Generate", self.generate, QKeySequence("Ctrl+Return"),
          "Generate (no model configured yet)", enabled=False)
        self.actions["generate"].setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])

        self.tool_actions = QActionGroup(self)
        self.tool_actions.setExclusive(True)
        for kind, key in TOOL_SHORTCUTS.items():
            action = a(tool_action_name(kind), kind.label, partial(self.tool_settings.set_tool, kind),
                       key, f"{kind.label} ({key})")
            action.setCheckable(True)
            action.setChecked(kind is self.tool_settings.tool)
            self.tool_actions.addAction(action)
        self.tool_settings.tool_changed.connect(
            lambda kind: self.actions[tool_action_name(kind)].setChecked(True)
        )

        for role, text, shortcut in (
            (Role.PAINT, "New &Paint Layer", "Ctrl+Shift+N"),
            (None, "New &Group", "Ctrl+G"),
            (Role.INPAINT_MASK, "New Inpaint &Mask", None),
            (Role.REGION, "New &Region", None),
            (Role.CONTROL, "New &Control Layer", None),
            (Role.REFERENCE, "New R&eference Layer", None),
        ):
            a(f"add_{role.value if role else 'group'}", text, partial(self.add_layer, role), shortcut)
        a("add_reference_image", "New Reference Layer from &Image…",
          lambda: self.layers_dock.add_reference_from_file(),
          tip="A picture to follow (style, composition, a face); or drop image files on the Layers dock")
        a("add_pose", "New P&ose Layer", self.add_pose_layer,
          tip="A pose control layer holding a standing skeleton; edit it with the Pose tool (P)")
        a("pose_tool", "&Pose Tool", None, "P", "Drag the joints of the active pose layer's skeleton (P)")
        self.actions["pose_tool"].setCheckable(True)
        self.actions["pose_tool"].toggled.connect(self.tools.set_pose_mode)
        self.tools.pose_mode_changed.connect(self.actions["pose_tool"].setChecked)
        self.tool_actions.triggered.connect(lambda _a: self.tools.set_pose_mode(False))
        a("pose_add_person", "Add Person to Pose", self.add_pose_person,
          tip="A standing skeleton in the middle of the view, on the active pose layer")
        a("pose_delete_person", "Delete Person from Pose", lambda: self._pose_edit("delete_selected"),
          tip="Remove the selected person of the pose (Delete, with the Pose tool)")
        a("pose_mirror", "Mirror Person", lambda: self._pose_edit("mirror_selected"),
          tip="Swap the selected person's left and right (M, with the Pose tool)")
        a("pose_from_image", "Pose from Image", self.pose_from_image,
          tip="Find the people's poses in the visible picture")
        a("depth_from_image", "Depth from &Image", self.depth_from_image,
          tip="Fill the active depth control layer with the visible picture's depth map")
        a("duplicate_layer", "&Duplicate Layer", self.duplicate_layer, "Ctrl+J")  # Krita's keys
        a("merge_down", "&Merge Down", self.merge_down, "Ctrl+E")
        a("delete_layer", "De&lete Layer", self.delete_layer, "Shift+Delete")
        a("canvas_size", "&Canvas Size…", lambda: canvas_size_dialog.change_canvas_size(self), "Ctrl+Alt+C",
          "Grow or crop the canvas (the picture stays where the anchor says)")
        a("image_size", "&Image Size…", lambda: canvas_size_dialog.change_image_size(self), None,
          "Resample the whole picture to a new size (Lanczos or area)")

        a("shortcuts", "&Keyboard Shortcuts", lambda: help_menu.show_shortcuts(self.menus, self),
          "Ctrl+/", "Every shortcut of the window, by menu")
        a("user_guide", "&User Guide", lambda: help_menu.open_user_guide(self.show_message), "F1",
          "Open the README: setting up, painting, generating, files")
        a("about", "&About Sfumato", lambda: help_menu.show_about(self))

    def _build_menus(self) -> None:
        self.menus.update(build_menu_bar(self.menuBar(), self.actions))
        self.recent_menu = self.menus["recent"]
        self._fill_recent_menu(self.settings.recent_files())

    def _build_toolbars(self) -> None:
        self.toolbar, self.tool_bar = build_toolbars(self, self.actions)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self._cursor_label = QLabel("")
        self._size_label = QLabel("")
        self._zoom_label = QLabel("")
        for w in (self._cursor_label, self._size_label, self._zoom_label):
            w.setMinimumWidth(80)
            status.addPermanentWidget(w)

    def _fill_recent_menu(self, paths: list[Path]) -> None:
        fill_recent_menu(self.recent_menu, paths, self.files.open)

    # -- status --------------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 5000)

    def _show_zoom(self, viewport: Viewport) -> None:
        self._zoom_label.setText(f"{viewport.zoom * self.devicePixelRatioF() * 100:.0f}%")

    def _show_cursor(self, x: float, y: float) -> None:
        self._cursor_label.setText(f"{int(x)}, {int(y)}")

    # -- commands ------------------------------------------------------------------------------
    def _guarded(self, what: str, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - an edit the model refused
            log.info("%s refused: %s", what, exc)
            self.show_message(f"Cannot {what}: {exc}")

    def undo(self) -> None:
        if self.view.cancel_interaction():
            return
        if self._document is not None:
            self._guarded("undo", self._document.undo)

    def redo(self) -> None:
        if self._document is not None:
            self._guarded("redo", self._document.redo)

    def cancel(self) -> None:
        """Esc: a drag in progress first, then a running generation."""
        if self.view.cancel_interaction():
            return
        if self._generation is not None:
            self._generation.cancel()

    def toggle_ai_layers(self) -> None:
        """Show or hide the tinted overlays of mask, region and control layers."""
        self.view.set_overlay_layers(self.actions["show_ai_layers"].isChecked())

    def generate(self) -> None:
        if self._generation is None:
            self.show_message("Generation is not available: no model is set up yet.")
            return
        self._generation.generate()

    def add_layer(self, role: Role | None) -> None:
        if self._document is not None:
            self._guarded("add a layer", lambda: layer_actions.add_layer(self._document, role))  # type: ignore[arg-type]

    def add_pose_layer(self) -> None:
        doc = self._document
        if doc is None:
            return
        self._guarded("add a pose layer", lambda: layer_actions.add_pose_layer(doc))
        self.tools.set_pose_mode(True)

    def add_pose_person(self) -> None:
        doc = self._document
        if doc is None:
            return
        seen = self.view.visible_document_rect().intersect(Rect(0, 0, doc.width, doc.height))
        if seen.empty:
            seen = Rect(0, 0, doc.width, doc.height)
        self._pose_edit("add_person", seen.x + seen.w / 2, seen.y + seen.h / 2, 0.7 * seen.h)

    def _pose_edit(self, what: str, *args: float) -> None:
        """Run a Pose tool edit; its refusals (no pose layer, no person chosen) are messages."""
        try:
            getattr(self.tools.pose_tool, what)(*args)
        except ToolError as exc:
            self.show_message(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a refused edit is a message, the model is unchanged
            self.show_message(f"Cannot edit the pose: {exc}")
            return
        self.tools.set_pose_mode(True)
        self.view.update()

    def depth_from_image(self) -> None:
        self.depth_job.run(self._document, self._document.active if self._document else None)

    def pose_from_image(self) -> None:
        self.pose_job.run(self._document, self._document.active if self._document else None)

    def duplicate_layer(self) -> None:
        doc = self._document
        if doc is not None and doc.active is not None:
            active = doc.active
            self._guarded("duplicate the layer", lambda: editing.duplicate_layer(doc, active))

    def merge_down(self) -> None:
        doc = self._document
        if doc is not None and isinstance(doc.active, PixelLayer):
            active = doc.active
            self._guarded("merge down", lambda: editing.merge_down(doc, active))

    def delete_layer(self) -> None:
        doc = self._document
        if doc is not None and doc.active is not None:
            active = doc.active
            self._guarded("delete the layer", lambda: layer_actions.remove_layer(doc, active))

    def clear_layer(self) -> None:
        doc = self._document
        if self.tools.pose_mode and doc is not None and layer_actions.is_pose_layer(doc.active):
            self._pose_edit("delete_selected")  # Delete with the Pose tool removes a person
            return
        if doc is not None and isinstance(doc.active, PixelLayer):
            active = doc.active
            self._guarded("clear the layer", lambda: editing.clear_layer(doc, active))

    def select_all(self) -> None:
        doc = self._document
        if doc is not None:
            self._guarded("select", lambda: selection.select_all(doc))

    def deselect(self) -> None:
        doc = self._document
        if doc is not None:
            self._guarded("deselect", lambda: selection.select_none(doc))

    def invert_selection(self) -> None:
        doc = self._document
        if doc is not None:
            self._guarded("invert the selection", lambda: selection.invert_selection(doc))

    def _selection_by(self, what: str, fn: Callable[[Document, int], None]) -> None:
        doc = self._document
        if doc is None:
            return
        if doc.selection is None:
            self.show_message("Nothing is selected.")
            return
        radius, ok = QInputDialog.getInt(self, f"{what.title()} selection", "Radius (pixels)", 8, 1, 512)
        if ok:
            self._guarded(f"{what} the selection", lambda: fn(doc, radius))

    def grow_selection(self) -> None:
        self._selection_by("grow", selection.grow_selection)

    def shrink_selection(self) -> None:
        self._selection_by("shrink", selection.shrink_selection)

    def feather_selection(self) -> None:
        self._selection_by("feather", selection.feather_selection)

    # -- layout persistence ------------------------------------------------------------------
    def _restore_layout(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)
        if state is not None:
            self.restoreState(state)

    def restore_dock_layout(self) -> None:
        """Re-apply the saved layout (call after mounting docks added later)."""
        _, state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)

    def save_settings(self) -> None:
        """Write the tool settings and the document's generation settings to disk."""
        self._settings_timer.stop()
        if self._layout_dirty and self.isVisible():
            self._layout_dirty = False
            self.settings.save_window_state(QByteArray(self.saveGeometry()), QByteArray(self.saveState()))
        self.tool_settings.save(self.settings)
        if self._document is not None:
            self.settings.save_last_recipe(self._document.recipe)
        self.settings.sync()

    def save_layout(self) -> None:
        self.settings.save_window_state(QByteArray(self.saveGeometry()), QByteArray(self.saveState()))
        self.save_settings()

    # -- events ------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.view.cancel_interaction()
        if not self.files.confirm_discard():
            event.ignore()
            return
        if self._generation is not None:
            try:
                self._generation.shutdown()
            except Exception:  # noqa: BLE001 - closing must still work
                log.exception("generation controller failed to shut down")
        self.journals.end()
        self.save_layout()
        event.accept()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if DocumentFiles.accepts_mime(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        if self.files.handle_mime(event.mimeData()):
            event.acceptProposedAction()

"""Where the window's actions show: the menu bar, the toolbars, the recent-files menu.

The main window creates every ``QAction`` and binds it to its command
(``MainWindow._build_actions``, through :func:`make_action`); this module lays them out
by name: which menu, in which order, between which separators, and which toolbar. The
keyboard shortcuts sheet reads the menus, so an action placed in a menu here is listed
there too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMenuBar, QToolBar, QWidget
from sfumato.desktop.tool_settings import ToolKind

TOOL_SHORTCUTS: dict[ToolKind, str] = {
    ToolKind.BRUSH: "B",
    ToolKind.ERASER: "E",
    ToolKind.MASK: "M",
    ToolKind.REGION: "R",
    ToolKind.FILL: "G",
    ToolKind.PICKER: "I",
    ToolKind.RECT_SELECT: "S",
    ToolKind.ELLIPSE_SELECT: "Shift+S",
    ToolKind.LASSO: "L",
    ToolKind.MOVE: "V",
}


def tool_action_name(kind: ToolKind) -> str:
    return f"tool_{kind.value}"


@dataclass(frozen=True)
class Submenu:
    """A submenu in a menu; ``key`` names it in the window's ``menus``. It starts empty:
    its owner fills it (recent files, the docks' toggles)."""

    key: str
    title: str


Entry = str | Submenu | None  # an action's name, a submenu, or a separator (None)

MENU_BAR: tuple[tuple[str, str, tuple[Entry, ...]], ...] = (
    ("file", "&File", (
        "new", "open", Submenu("recent", "Open &Recent"), None, "save", "save_as", None,
        "import", "export", None, "recover", None, "quit",
    )),
    ("edit", "&Edit", (
        "undo", "redo", None, "copy", "copy_merged", "paste", "clear", None, "cancel",
    )),
    ("view", "&View", (
        "fit", "actual", "zoom_in", "zoom_out", None, "show_ai_layers", None,
        Submenu("docks", "&Docks"),
    )),
    ("image", "&Image", ("canvas_size", "image_size")),
    ("layer", "&Layer", (
        "add_paint", "add_group", "add_inpaint-mask", "add_region", "add_control", "add_reference",
        "add_reference_image", "add_pose", "pose_add_person", "pose_delete_person", "pose_mirror",
        "pose_from_image", "depth_from_image", None,
        "import", "duplicate_layer", "merge_down", "delete_layer",
    )),
    ("select", "&Select", (
        "select_all", "deselect", "invert_selection", None,
        "grow_selection", "shrink_selection", "feather_selection",
    )),
    ("tools", "&Tools", (*(tool_action_name(k) for k in TOOL_SHORTCUTS), "pose_tool", None, "size_down", "size_up")),
    ("generate", "&Generate", ("generate", "cancel")),
    ("help", "&Help", ("shortcuts", "user_guide", None, "about")),
)

MAIN_TOOLBAR: tuple[str | None, ...] = (
    "new", "open", "save", None, "undo", "redo", None, "fit", "actual", None, "generate",
)


def make_action(
    window: QWidget,
    name: str,
    text: str,
    slot: Callable[[], object] | None = None,
    shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
    tip: str | None = None,
    enabled: bool = True,
) -> QAction:
    """A named action of ``window``, its shortcut live window-wide even with the menus
    hidden; ``tip`` is both the status tip and the tooltip."""
    action = QAction(text, window)
    action.setObjectName(name)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    if slot is not None:
        action.triggered.connect(lambda _checked=False, s=slot: s())
    action.setEnabled(enabled)
    window.addAction(action)
    return action


def build_menu_bar(bar: QMenuBar, actions: dict[str, QAction]) -> dict[str, QMenu]:
    """Fill ``bar`` as :data:`MENU_BAR` says; the menus (submenus included) by key."""
    menus: dict[str, QMenu] = {}
    for key, title, entries in MENU_BAR:
        menu = bar.addMenu(title)
        menus[key] = menu
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            elif isinstance(entry, Submenu):
                menus[entry.key] = menu.addMenu(entry.title)
            else:
                menu.addAction(actions[entry])
    return menus


def build_toolbars(window: QMainWindow, actions: dict[str, QAction]) -> tuple[QToolBar, QToolBar]:
    """The main toolbar (top) and the tools' toolbar (left)."""
    main = QToolBar("Main", window)
    main.setObjectName("toolbar_main")
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)
    for name in MAIN_TOOLBAR:
        main.addSeparator() if name is None else main.addAction(actions[name])
    tools = QToolBar("Tools", window)
    tools.setObjectName("toolbar_tools")
    tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(Qt.ToolBarArea.LeftToolBarArea, tools)
    for kind in TOOL_SHORTCUTS:
        tools.addAction(actions[tool_action_name(kind)])
    return main, tools


def fill_recent_menu(menu: QMenu, paths: list[Path], open_path: Callable[[Path], object]) -> None:
    """One entry per recent file (its name; the full path as tooltip); disabled when none."""
    menu.clear()
    for path in paths:
        action = menu.addAction(path.name)
        action.setToolTip(str(path))
        action.triggered.connect(lambda _=False, p=path: open_path(p))
    menu.setEnabled(bool(paths))

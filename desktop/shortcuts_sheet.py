"""Help ▸ Keyboard Shortcuts: every action with a shortcut, grouped by menu.

Read from the window's menus when it opens, so it lists exactly the keys the window has
(a shortcut added or changed anywhere shows up here without editing this file).
"""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ShortcutsSheet", "shortcut_rows"]


#: Keys of the prompt boxes themselves (no menu action carries them).
PROMPT_BOX_KEYS = [
    ("Prompt boxes", "Raise the weight of the selection or word", "Ctrl+Up"),
    ("Prompt boxes", "Lower the weight of the selection or word", "Ctrl+Down"),
]


def shortcut_rows(menus: dict[str, QMenu]) -> list[tuple[str, str, str]]:
    """``(menu title, action text, keys)`` for every action with a shortcut, in menu order
    (submenus included, each action once)."""
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()

    def walk(menu: QMenu, title: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), title)  # type: ignore[arg-type]
                continue
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
            if keys and id(action) not in seen:
                seen.add(id(action))
                rows.append((title, action.text().replace("&", ""), ", ".join(keys)))

    for menu in menus.values():
        if menu.parent() is not None and isinstance(menu.parent(), QMenu):
            continue  # a submenu: walked with its parent
        walk(menu, menu.title().replace("&", ""))
    return rows


class ShortcutsSheet(QDialog):
    def __init__(self, menus: dict[str, QMenu], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Action", "Keys"])
        self.tree.setRootIsDecorated(False)
        groups: dict[str, QTreeWidgetItem] = {}
        for title, text, keys in shortcut_rows(menus) + PROMPT_BOX_KEYS:
            group = groups.get(title)
            if group is None:
                group = groups[title] = QTreeWidgetItem(self.tree, [title, ""])
                font = group.font(0)
                font.setBold(True)
                group.setFont(0, font)
                group.setFirstColumnSpanned(True)
            QTreeWidgetItem(group, [text, keys])
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        self.resize(460, 560)

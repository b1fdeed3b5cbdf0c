"""The document edits the window performs, in one place, each one undoable.

Widgets and tools call these functions instead of reaching into the canvas editing verbs
themselves, so the Qt side has a single seam onto :mod:`sfumato.canvas.editing`.
Everything here is Qt-free.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import ControlSettings, GroupLayer, Layer, PixelLayer, Role

log = logging.getLogger(__name__)

ROLE_NAMES = {
    Role.PAINT: "Paint",
    Role.INPAINT_MASK: "Inpaint mask",
    Role.REGION: "Region",
    Role.CONTROL: "Control",
    Role.GENERATED: "Generated",
}


def unique_name(doc: Document, base: str) -> str:
    names = {layer.name for layer in doc.layers()}
    if base not in names:
        return base
    n = 2
    while f"{base} {n}" in names:
        n += 1
    return f"{base} {n}"


def insertion_point(doc: Document) -> tuple[GroupLayer, int]:
    """Where a new layer goes: just above the active layer (inside its group), or on top;
    into the active group when a group is active."""
    active = doc.active
    if isinstance(active, GroupLayer):
        return active, 0
    if active is not None and active.parent is not None:
        parent, index = doc.index_of(active)
        return parent, index
    return doc.root, 0


def add_layer(
    doc: Document,
    role: Role | None,
    *,
    name: str | None = None,
    layer: Layer | None = None,
    activate: bool = True,
) -> Layer:
    """Add a new layer (``role=None`` adds a group) above the active one; undoable."""
    if layer is None:
        if role is None:
            layer = GroupLayer(unique_name(doc, name or "Group"))
        else:
            layer = PixelLayer(
                unique_name(doc, name or ROLE_NAMES[role]),
                role=role,
                control=ControlSettings() if role is Role.CONTROL else None,
            )
    parent, index = insertion_point(doc)
    editing.add_layer(doc, layer, parent, index, activate)
    return layer


def remove_layer(doc: Document, layer: Layer) -> None:
    editing.remove_layer(doc, layer)


def move_layer(doc: Document, layer: Layer, parent: GroupLayer, index: int) -> None:
    """Move ``layer`` into ``parent`` at ``index`` (counted after removing it from where it is)."""
    editing.move_layer(doc, layer, parent, index)


def set_property(
    doc: Document, layer: Layer, name: str, value: Any, merge_id: object | None = None
) -> None:
    """Set a layer property (opacity, visible, locked, blend, name, prompt, ...); undoable.
    Consecutive changes with the same ``merge_id`` (a slider drag, typing) are one undo step."""
    if getattr(layer, name) == value:
        return
    editing.set_property(doc, layer, name, value, merge_id)


def set_selection(doc: Document, mask: np.ndarray | None) -> None:
    editing.set_selection(doc, mask)


def put_layer_pixels(doc: Document, layer: PixelLayer, rgba: np.ndarray, label: str) -> None:
    """Replace ``layer``'s pixels over the document with ``rgba`` (document-sized straight
    RGBA uint8, placed at document (0, 0)); one undoable command."""
    editing.put_pixels(doc, layer, rgba, 0, 0, label=label)


def set_layer_offset(doc: Document, layer: Layer, x: int, y: int, merge_id: object) -> None:
    """Move ``layer`` to offset ``(x, y)``; calls with the same ``merge_id`` (one drag) are
    one undo step."""
    if (layer.x, layer.y) != (x, y):
        editing.set_offset(doc, layer, x, y, merge_id)

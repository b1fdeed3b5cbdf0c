"""The editing verbs: one function per undoable change to a document, for scripts and the window.

Each verb builds one command and runs it through ``doc.execute``, so it becomes one undo
step (or merges into the last one, for calls sharing a ``merge_id``) and a refused edit
(:class:`~sfumato.canvas.edits.commands.EditError`) changes nothing. The rules live in the
commands (:mod:`~sfumato.canvas.edits.structure_commands`, :mod:`~sfumato.canvas.edits.property_commands`,
:mod:`~sfumato.canvas.edits.pixel_commands`, :mod:`~sfumato.canvas.edits.document_commands`); these
functions only name them. The document itself knows no command: it is the model, and this
module stands above it::

    layer = editing.add_layer(doc, PixelLayer("sketch"))       # on top, made active
    editing.set_property(doc, layer, "opacity", 0.5, merge_id=drag)
    editing.put_pixels(doc, layer, rgba_u8, x, y, mask=soft_mask)
    doc.undo()

A brush stroke is a transaction of its own (:class:`sfumato.canvas.paint.brush.Stroke`); fills
and selections have their verbs in :mod:`sfumato.canvas.paint.fill` and
:mod:`sfumato.canvas.paint.selection`.

Coordinates are document space.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sfumato.canvas.edits.document_commands import SetRecipe, SetSelection
from sfumato.canvas.edits.pixel_commands import ClearLayer, PutPixels
from sfumato.canvas.edits.property_commands import SetProperties
from sfumato.canvas.edits.structure_commands import (
    AddLayer,
    DuplicateLayer,
    MergeDown,
    MoveLayer,
    RemoveLayer,
)
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer


# -- structure ---------------------------------------------------------------------------
def add_layer(
    doc: Document, layer: Layer, parent: GroupLayer | None = None, index: int = 0, activate: bool = True
) -> Layer:
    """Insert ``layer`` into ``parent`` (default root) at ``index`` (0 = top); returns it."""
    doc.execute(AddLayer(doc, layer, parent, index, activate))
    return layer


def remove_layer(doc: Document, layer: Layer) -> None:
    doc.execute(RemoveLayer(doc, layer))


def move_layer(doc: Document, layer: Layer, parent: GroupLayer | None = None, index: int = 0) -> None:
    """Reorder/reparent ``layer`` to ``index`` of ``parent`` (counted after removing it)."""
    doc.execute(MoveLayer(doc, layer, parent, index))


def duplicate_layer(doc: Document, layer: Layer) -> Layer:
    """Copy ``layer`` (pixels shared copy-on-write) directly above it; returns the copy."""
    command = DuplicateLayer(doc, layer)
    doc.execute(command)
    assert command.copy is not None
    return command.copy


def merge_down(doc: Document, layer: PixelLayer) -> PixelLayer:
    """Merge ``layer`` into the pixel layer below it; returns that layer."""
    command = MergeDown(doc, layer)
    doc.execute(command)
    assert command.below is not None
    return command.below


# -- properties --------------------------------------------------------------------------
def set_property(
    doc: Document, layer: Layer, name: str, value: Any, merge_id: object | None = None
) -> None:
    """Set one layer property (name, opacity, visible, locked, blend, x, y, role, prompt,
    negative, control, reference, generation). Calls with the same ``merge_id`` merge into one undo step."""
    doc.execute(SetProperties(doc, layer, {name: value}, merge_id))


def set_properties(
    doc: Document, layer: Layer, values: dict[str, Any], merge_id: object | None = None
) -> None:
    doc.execute(SetProperties(doc, layer, values, merge_id))


def set_offset(doc: Document, layer: Layer, x: int, y: int, merge_id: object | None = None) -> None:
    """Move a layer (its surface origin, relative to its group); one undo step per merge_id."""
    doc.execute(SetProperties(doc, layer, {"x": x, "y": y}, merge_id))


def set_recipe(doc: Document, merge_id: object | None = None, **values: Any) -> None:
    """Change document-wide generation settings (``prompt=``, ``seed=``, ...)."""
    doc.execute(SetRecipe(doc, values, merge_id))


# -- pixels and selection ----------------------------------------------------------------
def clear_layer(doc: Document, layer: PixelLayer, use_selection: bool = True) -> None:
    """Make ``layer`` transparent (only the selected part when there is a selection)."""
    doc.execute(ClearLayer(doc, layer, use_selection))


def put_pixels(
    doc: Document,
    layer: PixelLayer,
    pixels: np.ndarray,
    x: int = 0,
    y: int = 0,
    mask: np.ndarray | None = None,
    over: bool = False,
    label: str = "Set Pixels",
) -> None:
    """Place straight RGBA uint8 ``pixels`` at document ``(x, y)``; see :class:`PutPixels`."""
    doc.execute(PutPixels(doc, layer, pixels, x, y, mask, over, label))


def set_selection(doc: Document, coverage: np.ndarray | None, label: str = "Select") -> None:
    """Replace the selection (float32 ``(height, width)`` in [0, 1], or None)."""
    doc.execute(SetSelection(doc, coverage, label))
